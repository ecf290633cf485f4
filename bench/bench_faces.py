"""The faces of the simulated boards measured from the client's side: the serial transport against
the UART emulator (`spikeloop.sim.uart_board`), and the pynq transport over pynq's `RemoteDevice`
and the remote-device server (`spikeloop.sim.pynq_remote`) against the same through `SimDevice`
in-process.

    python bench/bench_faces.py uart --sizes 40,12,6 --membranes --lanes 3 --chunk 16 --profile quick [--golden]
    python bench/bench_faces.py pynq-remote --sizes 40,12,6 --membranes --lanes 3 --chunk 16 --profile quick

The options are those of the serving commands (`--network` or `--sizes`, `--lanes`, `--chunk`,
`--membranes`, `--bus-width`, `--profile`), `--golden` serves the golden board, `--steps` sets the
timesteps. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from spikeloop import regmap
from spikeloop.config import CoreConfig
from spikeloop.host import open_core
from spikeloop.windows import load_writes


def served_board(config: CoreConfig, *, golden: bool, profile: str | None):
    """The board a face serves: the golden one, or the simulated one of `profile`."""
    from spikeloop.sim.board import SimBoard
    from spikeloop.sim.golden_board import GoldenBoard

    return GoldenBoard(config) if golden else SimBoard(config, profile=profile)


def bench_uart(network, config: CoreConfig, *, steps: int = 2000, reads: int = 2000, density: float = 0.2,
               seed: int = 0, golden: bool = False, profile: str | None = None) -> dict:
    """Speed of the serial transport against the UART emulator on a pty (no baud limit; the emulator runs
    in a thread of this process): register accesses/s, timesteps/s of run() and step(), bytes per
    timestep, and the ceiling of the same traffic at the ULX3S bridge's DEFAULT_BAUD."""
    from spikeloop.sim.uart_board import UARTBoard
    from spikeloop.uartlink import BITS_PER_BYTE, DEFAULT_BAUD, frame_seconds

    spikes = np.random.default_rng(seed).random((steps, config.n_in)) < density
    target = served_board(config, golden=golden, profile=profile)
    with UARTBoard(target) as board, open_core("serial", config=config, port=board.port) as core:
        t0 = time.perf_counter()
        core.load(network)
        load_s = time.perf_counter() - t0
        writes = len(load_writes(config, network))
        t0 = time.perf_counter()
        core.transport.read_many(np.full(reads, regmap.register("MAGIC").offset))
        reads_per_s = reads / (time.perf_counter() - t0)
        before = dict(board.stats)
        t0 = time.perf_counter()
        core.run(spikes)
        run_s = time.perf_counter() - t0
        host_bytes = (board.stats["bytes_in"] - before["bytes_in"]) / steps
        board_bytes = (board.stats["bytes_out"] - before["bytes_out"]) / steps
        n_step = max(1, steps // 4)
        before = dict(board.stats)
        t0 = time.perf_counter()
        for t in range(n_step):
            core.step(spikes[t])
        step_s = time.perf_counter() - t0
        step_bytes = (board.stats["bytes_in"] + board.stats["bytes_out"] - before["bytes_in"] - before["bytes_out"])
        violations = board.stats["flow_violations"]
    byte_s = BITS_PER_BYTE / DEFAULT_BAUD
    access_s = frame_seconds("READ", DEFAULT_BAUD) + frame_seconds("READ_DATA", DEFAULT_BAUD)
    return {
        "sizes": list(config.sizes), "target": "golden" if golden else "sim", "steps": steps,
        "register_reads_per_s": reads_per_s, "load_seconds": load_s, "load_writes_and_reads": 2 * writes,
        "run_timesteps_per_s": steps / run_s, "step_calls_per_s": n_step / step_s,
        "run_bytes_per_timestep": {"host_to_board": host_bytes, "board_to_host": board_bytes},
        "step_bytes_per_call": step_bytes / n_step, "flow_violations": violations,
        "ceiling_at_baud": {
            "baud": DEFAULT_BAUD,
            "register_accesses_per_s": 1 / access_s,
            "run_timesteps_per_s": 1 / ((host_bytes + board_bytes) * byte_s),
            "step_calls_per_s": 1 / (step_bytes / n_step * byte_s),
        },
    }


def bench_pynq_remote(network, config: CoreConfig, *, steps: int = 300, reads: int = 1000, density: float = 0.2,
                      seed: int = 0, golden: bool = False, profile: str | None = None, folder=None) -> dict:
    """Register reads/s, `run()` timesteps/s and closed-loop `step()` calls/s of the pynq transport over
    pynq's `RemoteDevice` and the remote-device server on localhost, and the same through `SimDevice`
    in-process."""
    from pynq.pl_server.remote_device import RemoteDevice

    from spikeloop.sim.pynq_remote import RemoteBoard
    from spikeloop.sim.zynq import SimDevice, write_overlay_files

    spikes = np.random.default_rng(seed).random((steps, config.n_in)) < density
    magic = np.full(reads, regmap.register("MAGIC").offset)

    def measure(device, bit) -> dict:
        with open_core("pynq", device=device, bitfile=str(bit)) as core:
            t0 = time.perf_counter()
            core.load(network)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            core.transport.read_many(magic)
            read_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            core.run(spikes)
            run_s = time.perf_counter() - t0
            core.clear_state()
            t0 = time.perf_counter()
            for t in range(steps):
                core.step(spikes[t])
            step_s = time.perf_counter() - t0
        return {"register_reads_per_s": reads / read_s, "load_seconds": load_s, "run_timesteps_per_s": steps / run_s,
                "step_calls_per_s": steps / step_s}

    with tempfile.TemporaryDirectory() as tmp:
        bit = write_overlay_files(folder or tmp, config, seed=seed)
        with RemoteBoard(served_board(config, golden=golden, profile=profile)) as server:
            remote = measure(RemoteDevice(ip_addr="127.0.0.1", port=server.port), bit)
        local = measure(SimDevice(served_board(config, golden=golden, profile=profile)), bit)
    return {"sizes": list(config.sizes), "target": "golden" if golden else "sim", "steps": steps, "reads": reads,
            "remote_device": remote, "sim_device": local}


#: face -> (benchmark, default timesteps)
FACES = {"uart": (bench_uart, 2000), "pynq-remote": (bench_pynq_remote, 300)}


def main(argv=None) -> int:
    from spikeloop.sim.board import add_served_core_arguments, served_core

    parser = argparse.ArgumentParser(prog="python bench/bench_faces.py", description=__doc__.splitlines()[0])
    parser.add_argument("face", choices=sorted(FACES), help="the face to measure")
    add_served_core_arguments(parser)
    parser.add_argument("--golden", action="store_true", help="serve the golden board, not the simulated one")
    parser.add_argument("--steps", type=int, default=None, help="timesteps (uart: 2000, pynq-remote: 300)")
    args = parser.parse_args(argv)
    network, config = served_core(args)
    run, steps = FACES[args.face]
    result = run(network, config, steps=args.steps or steps, golden=args.golden, profile=args.profile)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
