"""The model this server runs, as a card: classes, palette, input size, modes."""

from __future__ import annotations

from fastapi import APIRouter

from models import ModelCard
from service.api.deps import EngineDep
from service.api.schemas import ModelCardResponse, ModelList, error_responses
from service.errors import ModelNotFound
from service.types import MODES, is_stochastic

router = APIRouter(prefix="/v1/models", tags=["models"])


def card_response(card: ModelCard) -> ModelCardResponse:
    modes = [m for m in MODES if card.stochastic or not is_stochastic(m)]
    return ModelCardResponse(
        name=card.name,
        classes=list(card.classes),
        palette=[list(rgb) for rgb in card.palette],
        input_size=list(card.input_size),
        modes=modes,
        stochastic=card.stochastic,
        metrics=card.metrics,
    )


@router.get("", response_model=ModelList)
async def list_models(engine: EngineDep) -> ModelList:
    """The served model's card (one model a server; scale out with replicas)."""
    return ModelList(models=[card_response(engine.card)])


@router.get("/{model}", response_model=ModelCardResponse, responses=error_responses(404))
async def get_model(model: str, engine: EngineDep) -> ModelCardResponse:
    """One model's card by name."""
    if model != engine.card.name:
        raise ModelNotFound(f"model {model!r} is not served here; this server runs {engine.card.name!r}")
    return card_response(engine.card)
