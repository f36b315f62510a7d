"""Short versions of bench/reliability/suite.py's checks, in the normal test
run: the same code with small sizes (the full figures: docs/reliability.md)."""

import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "reliability"))
import suite  # noqa: E402

from conftest import BINARY  # noqa: E402

BUILD = pathlib.Path(BINARY).parent


def test_four_faults_during_one_job_lose_and_duplicate_nothing(tmp_path):
    result = suite.faults(BUILD, tmp_path, rows=1500)
    assert result["client_exit"] == 0
    assert (result["lost"], result["duplicates"], result["unexpected"], result["wrong"]) == (0, 0, 0, 0)
    assert result["resumed_rows"] > 0  # the rerun after kill -9 continued, not restarted


def test_overload_is_refused_fast_and_what_is_accepted_finishes(tmp_path):
    result = suite.overload(BUILD, tmp_path, clients=150, queue=8)
    assert result["other_errors"] == 0
    assert result["refused_unavailable"] > 0 and result["accepted"] > 0
    assert result["accepted"] + result["refused_unavailable"] == 150
    assert result["server_success"] == result["accepted"]
    assert result["rss_after_mib"] < result["rss_before_mib"] + 200


def test_connection_churn_leaves_memory_flat(tmp_path):
    result = suite.churn(BUILD, tmp_path, connections=400, threads=4)
    assert result["connections"] == 400
    assert result["rss_end_mib"] < result["rss_after_10pct_mib"] + 20


def test_short_soak_answers_every_request(tmp_path):
    result = suite.soak(BUILD, tmp_path, minutes=0.25, perf_analyzer=None, sample_seconds=2)
    assert result["server_fail"] == 0 and result["probe_errors"] == 0 and result["bulk_errors"] == 0
    assert result["client_exit"] == 2  # stopped by SIGTERM, resumable
    assert result["bulk_sent"] == result["bulk_rows_written"]
    assert result["server_success_minus_bulk_and_probe"] == 0
