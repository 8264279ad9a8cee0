"""A job's id says its kind (README § Async media jobs): support can tell a video from an audio job by it."""

from __future__ import annotations

import re

from tollway.core.jobs.service import new_job_id


def test_a_job_id_starts_with_its_kind_and_is_random() -> None:
    for kind, prefix in (("video", "vid"), ("audio", "aud"), ("image", "img")):
        ids = {new_job_id(kind) for _ in range(50)}
        assert len(ids) == 50
        assert all(re.fullmatch(rf"{prefix}_[A-Za-z0-9_-]{{20}}", job_id) for job_id in ids), ids
