import pytest


@pytest.fixture(scope="session")
def slurm_cluster():
    """The one-node SLURM of scripts/slurm-local.sh (tests/slurm_cluster.py), or a skip saying why not.
    Stopped at the end of the session only if this fixture started it."""
    from slurm_cluster import find_cluster, stop_cluster
    found = find_cluster()
    if isinstance(found, str):
        pytest.skip(found)
    yield found
    stop_cluster(found)
