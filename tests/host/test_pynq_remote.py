"""The pynq transport through PYNQ 4.0 remote devices: pynq's own client (`RemoteDevice`) over a real
gRPC connection on localhost to `spikeloop.sim.pynq_remote.RemoteBoard`, which serves the simulated
board of the MAIN design (one build per session, "quick" profile). The overlay's .bit and .hwh are
the stand-ins of `zynq.write_overlay_files`; pynq parses the .hwh on the client, as it does
for a board. pynq's client writes its metadata cache into its own package folder (pynq does that).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import PROFILE, SEED, main_config, main_network, serving_line, spike_train, wide_config

from spikeloop import golden, regmap
from spikeloop.config import ConfigError, design_hash

grpc = pytest.importorskip("grpc")
pytestmark = pytest.mark.usefixtures("main_board_built")


@pytest.fixture(scope="module")
def overlay_dir(tmp_path_factory):
    from spikeloop.sim.zynq import write_overlay_files

    folder = tmp_path_factory.mktemp("remote-overlay")
    write_overlay_files(folder, main_config(), seed=SEED + 100)
    return folder


@pytest.fixture(scope="module")
def server(main_board_built):
    from spikeloop.sim.board import SimBoard
    from spikeloop.sim.pynq_remote import RemoteBoard

    with RemoteBoard(SimBoard(main_config(), profile=PROFILE)) as board:
        yield board


@pytest.fixture(scope="module")
def device(server):
    from pynq.pl_server.remote_device import RemoteDevice

    return RemoteDevice(ip_addr="127.0.0.1", port=server.port)


@pytest.fixture
def core(server, device, overlay_dir):
    from spikeloop.host import open_core
    from spikeloop.sim.interface import Fault

    server.pl.board.fault(Fault.NONE)
    c = open_core("pynq", device=device, bitfile=str(overlay_dir / "spikeloop.bit"), network=main_network())
    yield c
    c.close()


def test_identity_load_and_read_back_over_grpc(core, server, device, overlay_dir):
    from pynq.pl_server.embedded_device import bit2bin

    from spikeloop.sim.zynq import CORE_BASE, DMA_BASE

    assert device.arch == "armv7l" and device.name == "Pynq-Z2"
    overlay = core.transport.overlay
    assert overlay.ip_dict["core"]["phys_addr"] == CORE_BASE and overlay.ip_dict["dma"]["phys_addr"] == DMA_BASE
    assert server.programmed[-1] == "spikeloop.bin"
    assert server.bitstream_attrs == {"binfile_name": "spikeloop.bin", "partial": False}
    firmware = server.files.data["/lib/firmware/spikeloop.bin"]
    assert firmware == bit2bin((overlay_dir / "spikeloop.bit").read_bytes())
    assert core.config == main_config() and core.read_register("MAGIC") == regmap.MAGIC
    assert core.transport.read_many([regmap.register("MAGIC").offset] * 3).tolist() == [regmap.MAGIC] * 3
    core.load(main_network(seed=SEED + 5), verify=True)  # every word written over gRPC and read back


def test_run_and_step_match_the_golden_model(core):
    seed = int(np.random.SeedSequence().entropy % 2**31)
    net = main_network()
    spikes = spike_train((24, 40), seed)
    ref = golden.run(net, spikes)
    out = core.run(spikes)
    where = f"(seed {seed})"
    assert ref.spikes.any(), f"no output spike: the comparison would be vacuous {where}"
    assert np.array_equal(out.spikes, ref.spikes), where
    assert np.array_equal(out.membranes, ref.membranes), where
    core.clear_state()
    core.clear_counters()
    for t in range(spikes.shape[0]):
        z, v = core.step(spikes[t])
        assert np.array_equal(z, ref.spikes[t]) and np.array_equal(v, ref.membranes[t]), f"timestep {t} {where}"
    counters = core.counters()
    assert counters["timesteps"] == spikes.shape[0]
    assert counters["spikes_in"] == int(spikes.sum()) and counters["spikes_out"] == int(ref.spikes.sum())
    assert counters["busy_cycles"] > 0


def test_a_core_that_never_answers_times_out_and_recovers(core, server):
    from spikeloop.host.transport import TransferTimeout
    from spikeloop.sim.interface import Fault

    core.timeout = 1.0
    server.pl.board.fault(Fault.MUTE)
    t0 = time.monotonic()
    with pytest.raises(TransferTimeout, match=r"S2MM \(receive\) did not finish before the deadline") as info:
        core.run(spike_train((4, 40), SEED + 1))
    assert time.monotonic() - t0 < 1.0 + 5.0
    status = info.value.status
    assert status["s2mm"] == "running, not idle" and "Idle" in status["mm2s"], status
    server.pl.board.fault(Fault.NONE)
    core.reset()
    spikes = spike_train((8, 40), SEED + 2)
    assert np.array_equal(core.run(spikes).membranes, golden.run(main_network(), spikes).membranes)


def test_metadata_of_another_design_is_refused(device, overlay_dir, tmp_path):
    from spikeloop.host.pynq_transport import PynqTransport
    from spikeloop.sim.zynq import write_overlay_files

    bit = write_overlay_files(tmp_path, main_config(), seed=SEED + 101)
    # pynq reuses the metadata it cached for a .bit of the same SHA-1: the stand-ins of two designs differ
    assert write_overlay_files(tmp_path / "w", wide_config(), seed=SEED + 101).read_bytes() != bit.read_bytes()
    other = design_hash(wide_config()).hex()
    (tmp_path / "spikeloop.json").write_text(json.dumps({"design_hash": other}))
    with pytest.raises(ConfigError, match=f"its metadata says {other[:16]}"):
        PynqTransport(bitfile=str(bit), device=device)
    (tmp_path / "spikeloop.json").write_text(json.dumps({"design_hash": design_hash(main_config()).hex()}))
    PynqTransport(bitfile=str(bit), device=device).close()


def test_a_server_that_goes_away_gives_an_error_not_a_hang(overlay_dir):
    """A server that is gone fails each call at once (gRPC UNAVAILABLE), as a TransportError."""
    from pynq.pl_server.remote_device import RemoteDevice

    from spikeloop.host import TransportError, open_core
    from spikeloop.sim.board import SimBoard
    from spikeloop.sim.pynq_remote import RemoteBoard

    server = RemoteBoard(SimBoard(main_config(), profile=PROFILE))
    device = RemoteDevice(ip_addr="127.0.0.1", port=server.port)
    core = open_core("pynq", device=device, bitfile=str(overlay_dir / "spikeloop.bit"), network=main_network())
    server.stop()
    for call in (lambda: core.read_register("MAGIC"), lambda: core.run(spike_train((2, 40), SEED))):
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="the remote device failed .*UNAVAILABLE") as info:
            call()
        assert isinstance(info.value.__cause__, grpc.RpcError)
        assert time.monotonic() - t0 < 10.0
    with pytest.raises(RuntimeError, match="Failed to connect to remote device"):
        RemoteDevice(ip_addr="127.0.0.1", port=server.port)  # pynq waits 5 s for a channel


def test_the_board_refuses_what_a_board_refuses(server, device):
    from pynq.pl_server.remote_device import RemoteMMIO
    from pynq.remote import mmio_pb2, remote_device_pb2

    from spikeloop.sim.zynq import CORE_BASE

    with pytest.raises(RuntimeError, match=r"no slave maps 4096 bytes at 0x50000000"):
        RemoteMMIO(device._stub["mmio"], 0x5000_0000, 4096)
    mmio = RemoteMMIO(device._stub["mmio"], CORE_BASE, 4096)
    with pytest.raises(RuntimeError, match=r"offset 0x1000 \(\+4 bytes\) outside the 4096-byte window"):
        mmio.read(4096)
    response = mmio._stub.write(mmio_pb2.WriteRequest(mmio_id=mmio.mmio_id, offset=0, data=b"\0\0"))
    assert not response.status and response.msg == "a write of 2 bytes: a whole number of 32-bit words"
    with pytest.raises(grpc.RpcError, match="/etc/passwd: only /lib/firmware/ and"):
        device.write_file("/etc/passwd", b"x")
    with pytest.raises(grpc.RpcError, match="/lib/firmware/nothing.bin does not exist"):
        device.write_file("/sys/class/fpga_manager/fpga0/firmware", b"nothing.bin")
    with pytest.raises(grpc.RpcError, match="/no/such/file: no such file on the board"):
        device.read_file("/no/such/file")
    assert not device.exists_file("/lib/firmware/nothing.bin").exists
    assert device.exists_file("/sys/class/fpga_manager/fpga0").exists
    response = device._stub["device"].set_pl_clk(remote_device_pb2.SetPlClkRequest(i=0, clk_mhz=100))
    assert response.status
    buf = device.allocate((4,), np.uint32)
    buf.freebuffer()
    with pytest.raises(RuntimeError, match="unknown buffer_id"):
        buf.flush()


def test_bad_arguments_are_refused(server):
    from spikeloop.sim.pynq_remote import RemoteBoard
    from spikeloop.sim.zynq import SimPL, bit_file

    board = server.pl.board
    with pytest.raises(TypeError, match=r"target must be a Board \(a SimBoard or a GoldenBoard\), not str"):
        RemoteBoard("board")
    with pytest.raises(ValueError, match="port=70000: must be an integer in 0..65535"):
        RemoteBoard(board, port=70000)
    with pytest.raises(ValueError, match="workers=0: must be an integer >= 1"):
        RemoteBoard(board, workers=0)
    with pytest.raises(ValueError, match="cycles_per_access=0: must be >= 1"):
        SimPL(board, cycles_per_access=0)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        RemoteBoard(board, port=server.port)
    with pytest.raises(ValueError, match="a bitstream payload of 3 bytes: it must be a multiple of 4"):
        bit_file(b"abc")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.xfail(reason="seen once under a loaded CI, not reproduced since (fresh cache, alone: passes): the "
                          "served process hung at exit after Ctrl-C; it now shuts its executor down and leaves "
                          "within EXIT_GRACE s with every thread's stack on stderr", strict=False)
def test_the_command_line_serves_pynq_remote_devices(tmp_path):
    """`python -m spikeloop.sim.pynq_remote` on pynq's port, and a client that only sets PYNQ_REMOTE_DEVICES."""
    from spikeloop.sim.pynq_remote import PORT

    if not _free(PORT):
        pytest.skip(f"port {PORT} is in use on this machine")
    main_network().save(tmp_path / "net.npz")
    command = [sys.executable, "-m", "spikeloop.sim.pynq_remote", "--network", str(tmp_path / "net.npz"),
               "--lanes", "3,2", "--chunk", "16,12", "--membranes", "--profile", PROFILE,
               "--overlay-dir", str(tmp_path / "overlay")]
    errors = tmp_path / "server.err"  # a file, not a pipe: a full pipe would block the server
    with open(errors, "w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = serving_line(proc, time.monotonic() + 300)
        assert f"at 127.0.0.1:{PORT}" in line, line
        bit = tmp_path / "overlay" / "spikeloop.bit"
        client = f"""
import numpy as np
from spikeloop import golden
from spikeloop.host import open_core
from spikeloop.network import Network
net = Network.load({str(tmp_path / "net.npz")!r})
core = open_core("pynq", bitfile={str(bit)!r}, network=net)
spikes = np.random.default_rng({SEED}).random((12, 40)) < 0.3
ref = golden.run(net, spikes)
assert ref.spikes.any() and np.array_equal(core.run(spikes).membranes, ref.membranes)
print(type(core.transport.device).__name__, core.transport.device.ip_addr)
"""
        env = {**os.environ, "PYNQ_REMOTE_DEVICES": "127.0.0.1"}
        done = subprocess.run([sys.executable, "-c", client], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split()[-2:] == ["RemoteDevice", "127.0.0.1"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:  # a loaded machine (other workers building boards) can take a while to stop gRPC's threads
            status = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"the server did not stop within 90 s of Ctrl-C; its stderr: {errors.read_text()[-2000:]}")
        assert status == 0, errors.read_text()[-2000:]
    bad = subprocess.run([sys.executable, "-m", "spikeloop.sim.pynq_remote", "--sizes", "40,x"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "expected an integer or comma-separated integers, got '40,x'" in bad.stderr


def test_a_board_that_stops_answering_times_out_and_recovers(overlay_dir):
    """pynq's client gives its gRPC calls no deadline; the transport gives each one `remote_timeout`, so a
    board that stays connected but answers nothing raises TransferTimeout instead of hanging."""
    from pynq.pl_server.remote_device import RemoteDevice

    from spikeloop.host import TransferTimeout, open_core
    from spikeloop.sim.board import SimBoard
    from spikeloop.sim.pynq_remote import RemoteBoard

    seed = SEED + 21
    network = main_network()
    with RemoteBoard(SimBoard(main_config(), profile=PROFILE)) as server:
        device = RemoteDevice(ip_addr="127.0.0.1", port=server.port)
        core = open_core("pynq", device=device, bitfile=str(overlay_dir / "spikeloop.bit"), network=network,
                         remote_timeout=0.5)
        spikes = spike_train((6, 40), seed)
        server.stall()
        for call in (lambda: core.read_register("MAGIC"), lambda: core.run(spikes)):
            t0 = time.monotonic()
            with pytest.raises(TransferTimeout, match="did not answer .* within 0.5 s"):
                call()
            assert time.monotonic() - t0 < 5.0, "a stalled board held the caller"
        server.resume()
        core.reset()
        out, ref = core.run(spikes), golden.run(network, spikes)
        assert ref.spikes.any(), f"seed {seed}: vacuous"
        assert np.array_equal(out.spikes, ref.spikes) and np.array_equal(out.membranes, ref.membranes), f"seed {seed}"
        core.close()


def test_a_bad_remote_timeout_is_refused(device):
    from spikeloop.host.pynq_transport import bound_remote_calls

    for bad in (0, -1.0, True, "5"):
        with pytest.raises(ValueError, match="remote_timeout must be a positive number of seconds"):
            bound_remote_calls(device, bad)
