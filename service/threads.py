"""One OpenMP thread team per process: the inference thread's.

libgomp gives every thread that opens a parallel region its own team of helper
threads. Once two teams exist (say the event loop thread loaded the model and the
inference thread runs it) there are more OpenMP threads than cores, and libgomp
"throttles": helpers sleep at the end of every region instead of spinning, so each
small op pays a futex wake-up. On 2 cores that doubled the time of the dropout,
state-update and map ops of a frame (0.3 → 0.6 ms for the dropout alone), which is
most of what vq-bnn costs over dnn. So the thread that loads the model runs torch
on one thread (it opens no team) and the inference thread alone gets `threads`.

Both settings are per thread: `torch.set_num_threads` sets the calling thread's
OpenMP team size (and a global that threads started later copy).
"""

from __future__ import annotations

import torch

LIBRARY_DEFAULT = torch.get_num_threads()  # torch's own choice, one per physical core


def confine_caller() -> None:
    """Run the calling thread's torch ops on itself alone; call it before its first op."""
    torch.set_num_threads(1)


def use_threads(threads: int) -> None:
    """Give the calling thread `threads` intra-op threads (0: torch's default); an executor initializer."""
    torch.set_num_threads(threads or LIBRARY_DEFAULT)
