"""`nas search --address`: a real two-node Ray cluster started with `ray start` on 127.0.0.1.

The head and a worker node each offer one CPU, so two concurrent one-CPU trials can only
run on different nodes: the test checks that both nodes trained trials (the `node`
column), that the run folder is complete and that the search left the cluster running
(it joined it, it does not own it). The cluster uses token authentication, as `ray start
--head` does by default, with a token of the test's own so no file under ~/.ray is needed.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_search_e2e import TINY_SPACE

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def cluster():
    """Yield (address, env) of a head + one worker node; kill both nodes' process groups after."""
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    env.pop("RAY_ADDRESS", None)
    # Short path: Ray's unix sockets live under it (108-byte limit).
    temp_dir = tempfile.mkdtemp(prefix="nasray", dir="/tmp")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats"]
    head_cmd = [_ray_cli(), "start", "--head", "--port", str(port), "--temp-dir", temp_dir,
                "--include-dashboard=false", *common]
    worker_cmd = [_ray_cli(), "start", "--address", address, *common]
    groups = []
    try:
        for cmd in (head_cmd, worker_cmd):
            # A session of its own: the node's daemons inherit its process group, so the
            # teardown stops exactly this cluster (`ray stop` would stop every Ray on the machine).
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
            groups.append(proc.pid)
            output, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-3000:]}"
        yield address, env
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in groups:
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2 if sig == signal.SIGTERM else 0)


def _cluster_nodes(address: str, env: dict) -> int:
    code = (f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip().splitlines()[-1])


def test_search_joins_a_two_node_cluster_and_uses_both_nodes(cluster, tmp_path):
    address, env = cluster
    assert _cluster_nodes(address, env) == 2
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    budget = 6
    cmd = [sys.executable, "-m", "nas", "search", "--space", str(space), "--budget", str(budget),
           "--dataset", "digits", "--epochs", "2", "--eta", "2", "--train-size", "300", "--val-size", "150",
           "--lr", "0.5", "--seed", "3", "--final-epochs", "0", "--address", address, "--out", str(tmp_path),
           "--name", "cluster"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Pareto front" in done.stdout

    import json

    import nas

    run_path = tmp_path / "cluster"
    for name in ("study.db", "config.json", "trials.csv", "pareto.csv", "pareto.png"):
        assert (run_path / name).is_file(), name
    assert json.loads((run_path / "config.json").read_text())["resources"]["address"] == address
    trials = nas.load_run(run_path).trials
    trained = trials[trials["fidelity"] > 0]
    assert len(trained) == budget
    nodes = set(trained["node"])
    assert len(nodes) == 2, trained[["number", "state", "node"]]
    assert all(node.startswith(socket.gethostname() + "/") for node in nodes)

    # The search joined the cluster; it must leave it running for others.
    assert _cluster_nodes(address, env) == 2


def test_unreachable_address_is_bad_input(tmp_path):
    port = _free_port()  # nothing listens there
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "nas", "search", "--space", str(space), "--budget", "2", "--dataset", "digits",
           "--address", f"127.0.0.1:{port}", "--out", str(tmp_path), "--name", "nowhere"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert f"--address 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
