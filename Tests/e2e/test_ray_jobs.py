"""A Ray Data job classifying 2,000 notes through two BatchServer pods with
clients/python's BatchServerPredictor in an actor pool: one actor killed
and one server SIGKILLed and restarted mid-job, and the Parquet output holds
every id exactly once, equal to single requests; rows without text land in
the error column and the job completes."""

import threading

import numpy as np
import pandas as pd
import pytest

from conftest import RunningServer
from engine_jobs import MODEL, fp32_repository, kill_one, notes, single_logits, start_servers, wait_for_progress

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=256 << 20, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def test_a_ray_job_survives_a_killed_actor_and_a_restarted_server(ray_cluster, tmp_path):
    from batchserver_client.ray_data import BatchServerPredictor

    servers = start_servers(tmp_path)
    rows = notes(2000)
    addresses = ",".join(f"{s.host}:{s.grpc_port}" for s in servers)
    dataset = ray.data.from_items(rows, override_num_blocks=8)
    options = BatchServerPredictor.options_for(addresses, MODEL, priority=2)
    output = tmp_path / "results"
    events = []

    def disrupt():
        wait_for_progress(servers, 300)
        events.append(kill_one(lambda pid, parent, cmd, table: "BatchServerPredictor" in cmd and "MapWorker" in cmd))
        wait_for_progress(servers, 900)
        first = servers[0]
        first.process.kill()
        first.process.wait()
        events.append("server killed")
        servers[0] = RunningServer(fp32_repository(), log_path=tmp_path / "server-0-again.log",
                                   http_port=first.http_port, grpc_port=first.grpc_port).wait_live()
        events.append("server back")

    disruptor = threading.Thread(target=disrupt)
    disruptor.start()
    try:
        dataset.map_batches(BatchServerPredictor, **options).write_parquet(str(output))
    finally:
        disruptor.join()
    assert len(events) == 3, events

    result = pd.read_parquet(output)
    assert len(result) == 2000 and result["id"].is_unique
    assert set(result["id"]) == {r["id"] for r in rows}
    bad = {r["id"] for r in rows if r["text"] is None}
    errors = result[result["error"].notna()]
    assert set(errors["id"]) == bad and (errors["error"] == "row has no text").all()
    by_id = dict(zip(result["id"], result["LOGITS"]))
    texts = {r["id"]: r["text"] for r in rows}
    for i in range(0, 2000, 97):
        key = f"note-{i}"
        if texts[key] is not None:
            assert np.allclose(np.asarray(by_id[key], dtype=np.float32), single_logits(servers[1], texts[key]),
                               atol=1e-4, rtol=1e-4)
    for s in servers:
        s.stop()
