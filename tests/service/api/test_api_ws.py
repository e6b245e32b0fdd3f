from __future__ import annotations

import json

import numpy as np
from api_helpers import png
from fastapi.testclient import TestClient


def test_ws_answers_every_frame_in_order(client: TestClient) -> None:
    with client.websocket_connect("/v1/streams/ws-1/ws?outputs=mask,entropy") as ws:
        for i in range(3):
            ws.send_text(json.dumps({"type": "frame", "timestamp": float(i)}))
            ws.send_bytes(png(seed=i))
            result = ws.receive_json()
            assert result["type"] == "result" and result["frame_index"] == i
            assert result["timestamp"] == float(i) and set(result["maps"]) == {"mask", "entropy"}


def test_ws_controls_and_bad_frames_keep_the_socket_open(client: TestClient) -> None:
    with client.websocket_connect("/v1/streams/ws-2/ws?mode=vq-dnn") as ws:
        ws.send_bytes(b"garbage")
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "invalid_request"
        ws.send_text(json.dumps({"type": "frame", "width": 4, "height": 2}))
        ws.send_bytes(np.zeros((2, 4, 3), np.uint8).tobytes())
        first = ws.receive_json()
        assert first["mode"] == "vq-dnn" and (first["width"], first["height"]) == (4, 2)
        ws.send_text(json.dumps({"type": "reset"}))
        assert ws.receive_json() == {"type": "ack", "control": {"type": "reset"}}
        ws.send_bytes(png())
        assert ws.receive_json()["state_reset"] is True
        ws.send_text(json.dumps({"type": "mode", "mode": "dnn"}))
        assert ws.receive_json()["type"] == "ack"
        ws.send_text(json.dumps({"type": "outputs", "outputs": ["epistemic"]}))
        assert ws.receive_json()["type"] == "ack"
        ws.send_bytes(png())
        result = ws.receive_json()
        assert result["mode"] == "dnn" and set(result["maps"]) == {"epistemic"}
        ws.send_text("{not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_text(json.dumps({"type": "mode", "mode": "bayes"}))
        assert ws.receive_json()["error"]["code"] == "invalid_parameter"


def test_ws_bad_query_sends_error_then_closes(client: TestClient) -> None:
    with client.websocket_connect("/v1/streams/ws-3/ws?mode=bayes") as ws:
        assert ws.receive_json()["error"]["code"] == "invalid_parameter"


def test_subscribe_sees_http_frames(client: TestClient) -> None:
    with client.websocket_connect("/v1/streams/watched/subscribe") as sub:
        hello = sub.receive_json()
        assert hello == {"type": "subscribed", "stream_id": "watched", "exists": False}
        for i in range(3):
            response = client.post(
                "/v1/streams/watched/frames", content=png(seed=i), headers={"Content-Type": "image/png"}
            )
            assert response.status_code == 200
        seen = [sub.receive_json() for _ in range(3)]
        assert [m["frame_index"] for m in seen] == [0, 1, 2]
        assert all(m["type"] == "result" and m["missed"] == 0 for m in seen)
        client.delete("/v1/streams/watched")
        assert sub.receive_json()["type"] == "end"


def test_ws_newest_frame_wins_when_the_client_outpaces_the_model(settings) -> None:
    import time

    from service.app import create_app
    from service.engine import Engine

    def slow_engine(s, observer):
        engine = Engine.from_settings(s, observer)
        forward = engine.backend.forward

        def slow_forward(*args, **kwargs):
            time.sleep(0.2)
            return forward(*args, **kwargs)

        engine.backend.forward = slow_forward  # type: ignore[method-assign]
        return engine

    with TestClient(create_app(settings, engine_factory=slow_engine)) as client:
        with client.websocket_connect("/v1/streams/burst/ws?outputs=mask") as ws:
            for i in range(6):
                ws.send_bytes(png(seed=i))
            indices, dropped = [], 0
            while len(indices) + dropped < 6:
                result = ws.receive_json()
                assert result["type"] == "result", result
                indices.append(result["frame_index"])
                dropped += result["dropped_frames"]
        assert dropped > 0 and indices == list(range(len(indices)))
        text = client.get("/metrics").text
        assert f'streamuq_dropped_frames_total{{reason="superseded"}} {float(dropped)}' in text


def test_subscribe_sees_kserve_sequences_and_npz_posts(client: TestClient) -> None:
    image = np.zeros((8, 10, 3), np.uint8)
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "IMAGE",
                    "datatype": "UINT8",
                    "shape": [8, 10, 3],
                    "parameters": {"binary_data_size": 240},
                }
            ],
            "parameters": {"sequence_id": 77, "sequence_start": True},
        }
    ).encode()
    with client.websocket_connect("/v1/streams/77/subscribe") as sub:
        assert sub.receive_json()["type"] == "subscribed"
        response = client.post(
            "/v2/models/unet-ss-mcd/infer",
            content=head + image.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert response.status_code == 200, response.text
        client.post(
            "/v1/streams/77/frames",
            content=png(),
            headers={"Content-Type": "image/png", "Accept": "application/x-npz"},
        )
        first, second = sub.receive_json(), sub.receive_json()
    assert (first["frame_index"], second["frame_index"]) == (0, 1)
    assert set(first["maps"]) == {"mask", "confidence", "entropy", "aleatoric", "epistemic"}


def test_ws_short_path_is_the_same_socket(client: TestClient) -> None:
    with client.websocket_connect("/v1/streams/short") as ws:
        ws.send_bytes(png())
        assert ws.receive_json()["frame_index"] == 0
    assert client.get("/v1/streams/short").json()["frames_seen"] == 1  # HTTP GET of the same path still works
