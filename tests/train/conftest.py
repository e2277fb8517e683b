import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Training tests use tiny convolutions: one thread is faster than two, and xdist runs two workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
