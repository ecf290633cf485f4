"""The `pynq` transport: a spikeloop overlay on a PYNQ board (or a PYNQ 4.0 remote device, or
the simulated board behind `spikeloop.sim.zynq`), through pynq's own MMIO, `allocate`
and AXI DMA driver. Needs numpy and pynq only (no torch: it runs on the board's 32-bit ARM).

- `SpikeloopIP`: the `pynq.DefaultIP` driver that pynq binds to the core by its VLNV
  (`xilinx.com:module_ref:spikeloop_core:1.0`, the core added to a block design as a module
  reference); register access, with bulk forms on the memory-mapped array.
- `SpikeloopOverlay`: a `pynq.Overlay` that finds the core and its AXI DMA (simple mode, both
  channels) by type, whatever the block design named them. Without a path, "spikeloop.bit" is
  looked up by pynq: the working directory, then the `pynq.overlays` entry points (the overlay
  package of `spikeloop.boards.overlay`). `.metadata` is the spikeloop.json beside the bitstream.
- `PynqTransport`: stream transfers with the receive armed before the send, and waits with
  deadlines instead of pynq's `wait()` (which spins forever on a core that never sends TLAST):
  the DMA status registers are polled until idle; on an error bit or at the deadline the DMA
  is reset and restarted, and the exception carries the decoded DMASR of both channels. When the
  overlay has metadata, its design hash must be the core's (HASH0..7), else `ConfigError`.
- PYNQ 4.0 remote devices (`PYNQ_REMOTE_DEVICES=<ip>`): pynq's gRPC client gives its calls no
  deadline, so a board that stays connected but stops answering would block forever;
  `bound_remote_calls` gives each call one (`remote_timeout`), and a call that fails raises
  `TransferTimeout` (no answer in time) or `TransportError` (the board is gone, or refused).
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import numpy as np
import pynq

from spikeloop import regmap
from spikeloop.config import ConfigError
from spikeloop.overlay import DMA, DMA_VLNV, VLNV, decode_dmasr

from .transport import Received, TransferTimeout, Transport, TransportError

__all__ = ["SpikeloopIP", "SpikeloopOverlay", "PynqTransport", "sim_overlay", "read_metadata", "check_metadata",
           "bound_remote_calls", "REMOTE_CALL_SECONDS"]

#: Seconds one call to a PYNQ 4.0 remote device may take before it fails (pynq sets no deadline).
REMOTE_CALL_SECONDS = 10.0


def _deadline_interceptor(seconds: float):
    """A gRPC client interceptor that gives every call without a timeout one of `seconds`."""
    import collections

    import grpc

    class Details(collections.namedtuple("Details", "method timeout metadata credentials wait_for_ready compression"),
                  grpc.ClientCallDetails):
        pass

    class Deadline(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def _bounded(self, d):
            if d.timeout is not None:
                return d
            return Details(d.method, seconds, d.metadata, d.credentials, getattr(d, "wait_for_ready", None),
                           getattr(d, "compression", None))

        def intercept_unary_unary(self, continuation, details, request):
            return continuation(self._bounded(details), request)

        intercept_unary_stream = intercept_unary_unary

        def intercept_stream_unary(self, continuation, details, requests):
            return continuation(self._bounded(details), requests)

        intercept_stream_stream = intercept_stream_unary

    return Deadline()


def bound_remote_calls(device, seconds: float = REMOTE_CALL_SECONDS):
    """Give every gRPC call of a PYNQ remote device (`pynq.pl_server.remote_device.RemoteDevice`) a
    deadline of `seconds`; any other device is returned unchanged. Call it before an overlay maps
    the device's IPs: an MMIO made earlier keeps the unbounded channel."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"remote_timeout must be a positive number of seconds, got {seconds!r}")
    stubs, client = getattr(device, "_stub", None), getattr(device, "client", None)
    if not isinstance(stubs, dict) or getattr(client, "channel", None) is None:
        return device
    if getattr(device, "_spikeloop_call_seconds", None) != seconds:
        import grpc

        channel = grpc.intercept_channel(client.channel, _deadline_interceptor(float(seconds)))
        device._stub = {name: type(stub)(channel) for name, stub in stubs.items()}
        device._spikeloop_call_seconds = seconds
    return device


def _remote_errors(method):
    """A failed call to a remote device (a `grpc.RpcError`) as the transport's own exceptions."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            code = getattr(exc, "code", None)
            if not type(exc).__module__.startswith("grpc") or not callable(code):
                raise
            name = getattr(code(), "name", str(code()))
            details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
            if name == "DEADLINE_EXCEEDED":
                raise TransferTimeout(f"{self.describe()}: the remote device did not answer {method.__name__} "
                                      f"within {self.remote_timeout:g} s", {"grpc": name}) from exc
            raise TransportError(f"{self.describe()}: the remote device failed {method.__name__}: {name}: "
                                 f"{details}") from exc
    return wrapper

def read_metadata(bitfile) -> dict | None:
    """The metadata JSON beside a bitstream (`spikeloop.bit` -> `spikeloop.json`), None when there is none."""
    path = Path(bitfile).with_suffix(".json")
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("design_hash"), str):
        raise ConfigError(f"{path} has no design_hash: not spikeloop overlay metadata")
    return meta


def check_metadata(metadata: dict | None, read, where: str) -> None:
    """Refuse a core whose HASH0..7 registers are not the metadata's design hash (`read(offset)` reads a word)."""
    if metadata is None:
        return
    words = [read(regmap.register(f"HASH{k}").offset) for k in range(8)]
    got = b"".join(int(w).to_bytes(4, "little") for w in words).hex()
    want = metadata["design_hash"]
    if got != want:
        raise ConfigError(f"{where}: the core's design hash is {got[:16]}..., its metadata says {want[:16]}...: "
                          "the bitstream and spikeloop.json are of different builds (or another bitstream is loaded)")


class SpikeloopIP(pynq.DefaultIP):
    """The driver pynq instantiates for the core (bound by VLNV): registers by byte offset."""

    bindto = [VLNV]

    def __init__(self, description):
        super().__init__(description=description)

    def read_many(self, offsets) -> np.ndarray:
        """Words at byte `offsets`, uint32 (one vectorized gather on a memory-mapped device)."""
        index = np.asarray(offsets, dtype=np.int64).reshape(-1) >> 2
        array = self.mmio.array
        if isinstance(array, np.ndarray):
            return np.asarray(array[index], dtype=np.uint32)
        return np.array([self.mmio.read(int(i) << 2) for i in index], dtype=np.uint32)

    def write_many(self, offsets, values) -> None:
        """Write `values` at byte `offsets` in order (32-bit stores, one scatter when memory-mapped)."""
        index = np.asarray(offsets, dtype=np.int64).reshape(-1) >> 2
        words = (np.asarray(values, dtype=np.int64).reshape(-1) & 0xFFFFFFFF).astype(np.uint32)
        array = self.mmio.array
        if isinstance(array, np.ndarray):
            array[index] = words
        else:
            for i, w in zip(index, words):
                self.mmio.write(int(i) << 2, int(w))


class SpikeloopOverlay(pynq.Overlay):
    """A spikeloop overlay: `.core` (a `SpikeloopIP`) and `.dma` (pynq's `DMA`), found by type.

    `core_name` / `dma_name` pick one when the design holds several. Other arguments are
    `pynq.Overlay`'s (`device=`, `download=` ...). `.metadata`: spikeloop.json beside the
    bitstream (None when absent).
    """

    def __init__(self, bitfile_name: str = "spikeloop.bit", *, core_name: str | None = None,
                 dma_name: str | None = None, **kwargs):
        super().__init__(bitfile_name, **kwargs)
        self.core_name = core_name or self._find(lambda t: t == VLNV, "the spikeloop core")
        self.dma_name = dma_name or self._find(lambda t: t.startswith(DMA_VLNV.rpartition(":")[0] + ":"), "an AXI DMA")
        self.metadata = read_metadata(self.bitfile_name)

    def _find(self, match, what: str) -> str:
        names = [name for name, d in self.ip_dict.items() if match(d.get("type") or "")]
        if len(names) != 1:
            found = ", ".join(f"{n} ({d.get('type')})" for n, d in self.ip_dict.items()) or "nothing"
            raise TransportError(f"{self.bitfile_name}: expected one {what}, found {len(names)} among: {found}")
        return names[0]

    def _ip(self, name: str):
        # Through pynq's IP map, not getattr(self, ...): the block design may call the core "core".
        return functools.reduce(getattr, name.split("/"), self._ip_map)

    @property
    def core(self) -> SpikeloopIP:
        """The core's driver."""
        return self._ip(self.core_name)

    @property
    def dma(self):
        """The AXI DMA's driver (pynq.lib.dma.DMA)."""
        return self._ip(self.dma_name)


class PynqTransport(Transport):
    """The core of a spikeloop overlay, through MMIO and AXI DMA.

    Parameters (keyword-only)
    ----------
    overlay : a `SpikeloopOverlay` (else one is made from `bitfile` on `device`).
    bitfile : the bitstream (default "spikeloop.bit": the working directory's, else the installed
        overlay package's), `.hwh` and (optional) `.json` metadata beside it.
    device : the pynq `Device` (default: pynq's active device; a `zynq.SimDevice` off-board).
    download : download the bitstream when making the overlay (default True).
    quiet : seconds without an output word after which `drain` decides the core is empty.
    remote_timeout : on a PYNQ remote device, seconds one gRPC call may take (`bound_remote_calls`);
        a transfer's deadline may be passed by up to one such call.
    """

    name = "pynq"
    cycles_per_second = 5e6  # a 100 MHz fabric behind ~30 us register reads, conservatively

    def __init__(self, *, overlay=None, bitfile: str = "spikeloop.bit", device=None, download: bool = True,
                 quiet: float = 0.005, remote_timeout: float = REMOTE_CALL_SECONDS):
        self.remote_timeout = remote_timeout
        if overlay is None:
            kwargs = {"download": download}
            if device is None and pynq.Device.devices:
                device = pynq.Device.active_device  # what the overlay would take: bound it first
            if device is not None:
                kwargs["device"] = bound_remote_calls(device, remote_timeout)
            overlay = SpikeloopOverlay(bitfile, **kwargs)
        self.overlay = overlay
        self.ip = overlay.core
        self.dma = overlay.dma
        self.device = self.ip.device
        self.quiet = quiet
        check_metadata(getattr(overlay, "metadata", None), self.read, str(overlay.bitfile_name))
        params = self.dma.description.get("parameters", {})
        if int(params.get("c_include_sg", 0)):
            raise TransportError(f"{overlay.dma_name}: the AXI DMA is in scatter-gather mode; spikeloop needs "
                                 "simple mode (c_include_sg 0)")
        if self.dma.sendchannel is None or self.dma.recvchannel is None:
            raise TransportError(f"{overlay.dma_name}: the AXI DMA needs both channels (MM2S and S2MM)")
        self.max_transfer_words = int(self.dma.buffer_max_size) // 8
        self._buffers: dict = {}

    def describe(self) -> str:
        return f"pynq transport ({self.overlay.core_name} at {self.ip.mmio.base_addr:#x}, {self.overlay.dma_name})"

    # ------------------------------------------------------------------ registers
    @_remote_errors
    def read(self, offset: int) -> int:
        self.stats.mmio_reads += 1
        return int(self.ip.read(int(offset)))

    @_remote_errors
    def write(self, offset: int, value: int) -> None:
        self.stats.mmio_writes += 1
        self.ip.write(int(offset), int(value) & 0xFFFFFFFF)

    @_remote_errors
    def read_many(self, offsets) -> np.ndarray:
        self.stats.mmio_reads += int(np.size(offsets))
        return self.ip.read_many(offsets)

    @_remote_errors
    def write_many(self, offsets, values) -> None:
        self.stats.mmio_writes += int(np.size(offsets))
        self.ip.write_many(offsets, values)

    # ------------------------------------------------------------------ DMA
    def _sr(self, channel: int) -> int:
        return int(self.dma.mmio.read(channel + DMA.DMASR))

    def _status(self) -> dict:
        mm2s, s2mm = self._sr(DMA.MM2S), self._sr(DMA.S2MM)
        return {"mm2s_dmasr": mm2s, "mm2s": decode_dmasr(mm2s), "s2mm_dmasr": s2mm, "s2mm": decode_dmasr(s2mm)}

    def _buffer(self, role: str, words: int, dtype) -> np.ndarray:
        key = (role, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < words:
            if buf is not None:
                buf.freebuffer()
            size = 1 << max(10, (int(words) - 1).bit_length())
            buf = pynq.allocate(shape=(size,), dtype=dtype, target=self.device)
            self._buffers[key] = buf
        return buf

    def _reset_dma(self, deadline: float) -> None:
        """Reset the whole DMA (both channels), then start both channels again."""
        mmio = self.dma.mmio
        mmio.write(DMA.MM2S + DMA.DMACR, DMA.RESET)
        limit = max(deadline, time.monotonic() + 1.0)
        while mmio.read(DMA.MM2S + DMA.DMACR) & DMA.RESET:
            if time.monotonic() > limit:
                raise TransportError(f"the AXI DMA did not come out of reset: {self._status()}")
        for channel, driver in ((DMA.MM2S, self.dma.sendchannel), (DMA.S2MM, self.dma.recvchannel)):
            mmio.write(channel + DMA.DMACR, DMA.RS)
            while self._sr(channel) & DMA.HALTED:
                if time.monotonic() > limit:
                    raise TransportError(f"the AXI DMA did not start after a reset: {self._status()}")
            driver.start()  # pynq's bookkeeping; the channel runs already, so it returns at once

    def _ensure_running(self, deadline: float) -> None:
        if (self._sr(DMA.MM2S) | self._sr(DMA.S2MM)) & (DMA.HALTED | DMA.ERRORS):
            self._reset_dma(deadline)

    def _wait(self, deadline: float, channels=(DMA.MM2S, DMA.S2MM)) -> None:
        """Poll the channels (default both) until they are idle; on an error bit or at the deadline, reset
        the DMA and raise with the decoded status of both channels."""
        names = {DMA.MM2S: "MM2S (send)", DMA.S2MM: "S2MM (receive)"}
        waiting = list(channels)
        while waiting:
            for channel in list(waiting):
                sr = self._sr(channel)
                if sr & DMA.ERRORS:
                    status = self._status()
                    self._reset_dma(deadline)
                    why = "; ".join(text for bit, text in DMA.ERROR_TEXT.items() if sr >> bit & 1)
                    raise TransportError(f"AXI DMA {names[channel]} error: DMASR = {sr:#010x} ({decode_dmasr(sr)}): "
                                         f"{why}. The DMA was reset. Status before the reset: {status}")
                if sr & DMA.IDLE:
                    waiting.remove(channel)
                elif sr & DMA.HALTED:
                    raise TransportError(f"AXI DMA {names[channel]} stopped: DMASR = {sr:#010x} ({decode_dmasr(sr)})")
            if waiting and time.monotonic() > deadline:
                status = self._status()
                self._reset_dma(deadline)
                late = " and ".join(names[c] for c in waiting)
                raise TransferTimeout(
                    f"AXI DMA {late} did not finish before the deadline: MM2S (send) DMASR = "
                    f"{status['mm2s_dmasr']:#010x} ({status['mm2s']}), S2MM (receive) DMASR = "
                    f"{status['s2mm_dmasr']:#010x} ({status['s2mm']}). The DMA was reset; reset the core before "
                    "the next transfer.", {"waiting": late, **status})

    @_remote_errors
    def transfer(self, words, n_out: int, *, deadline: float) -> Received:
        words = np.asarray(words).reshape(-1)
        dtype = words.dtype
        nbytes_in, nbytes_out = words.size * dtype.itemsize, n_out * dtype.itemsize
        if max(words.size, n_out) > self.max_transfer_words:
            raise TransportError(f"a transfer of {max(words.size, n_out)} words exceeds the DMA's "
                                 f"{self.max_transfer_words}; send fewer timesteps at once")
        send_buf = self._buffer("in", words.size, dtype)
        recv_buf = self._buffer("out", n_out, dtype)
        send_buf[: words.size] = words
        self.stats.count_stream(sent=nbytes_in)
        try:
            self.dma.recvchannel.transfer(recv_buf, nbytes=nbytes_out)  # armed before the first word goes out
            self.dma.sendchannel.transfer(send_buf, nbytes=nbytes_in)
        except RuntimeError as exc:  # pynq: "DMA channel not started" / "not idle"
            raise TransportError(f"the AXI DMA refused the transfer ({exc}): {self._status()}; reset the core") from exc
        self._wait(deadline)
        got = int(self.dma.mmio.read(DMA.S2MM + DMA.LENGTH)) // dtype.itemsize
        recv_buf.invalidate()
        self.stats.stream_bytes_received += got * dtype.itemsize
        # Simple mode ends a receive without error only at TLAST (a longer packet is DMAIntErr).
        return Received(np.array(recv_buf[:got]), True)

    @_remote_errors
    def send_frame(self, words, *, deadline: float) -> None:
        """One transfer on the DMA's send channel (MM2S) alone, waited for with the deadline."""
        words = np.asarray(words).reshape(-1)
        if words.size > self.max_transfer_words:
            raise TransportError(f"a transfer of {words.size} words exceeds the DMA's {self.max_transfer_words}")
        send_buf = self._buffer("in", words.size, words.dtype)
        send_buf[: words.size] = words
        self.stats.count_stream(sent=words.nbytes)
        try:
            self.dma.sendchannel.transfer(send_buf, nbytes=words.nbytes)
        except RuntimeError as exc:  # pynq: "DMA channel not started" / "not idle"
            raise TransportError(f"the AXI DMA refused the transfer ({exc}): {self._status()}; reset the core") from exc
        self._wait(deadline, channels=(DMA.MM2S,))

    @_remote_errors
    def abort(self) -> None:
        self._reset_dma(time.monotonic() + 1.0)

    @_remote_errors
    def drain(self, *, deadline: float) -> int:
        """Receive into a scratch buffer until no word comes for `quiet` seconds (and 50 polls), then
        reset the DMA; returns the bytes received with TLAST (a tail without TLAST is not counted)."""
        scratch = self._buffer("drain", 1 << 16, np.uint64)
        total = 0
        self._ensure_running(deadline)
        while True:
            self.dma.recvchannel.transfer(scratch, nbytes=scratch.nbytes)
            quiet_until = time.monotonic() + self.quiet
            polls = 0
            while True:
                sr = self._sr(DMA.S2MM)
                polls += 1
                if sr & (DMA.IDLE | DMA.ERRORS):
                    break
                if time.monotonic() > quiet_until and polls >= 50:
                    self._reset_dma(deadline)
                    return total
                if time.monotonic() > deadline:
                    self._reset_dma(deadline)
                    raise TransferTimeout(f"the core kept sending until the deadline ({total} bytes discarded)",
                                          self._status())
            if sr & DMA.ERRORS:  # more than the scratch buffer without TLAST: keep going
                total += scratch.nbytes
                self._reset_dma(deadline)
            else:
                total += int(self.dma.mmio.read(DMA.S2MM + DMA.LENGTH))
            if time.monotonic() > deadline:
                self._reset_dma(deadline)
                raise TransferTimeout(f"the core kept sending until the deadline ({total} bytes discarded)",
                                      self._status())

    def close(self) -> None:
        for buf in self._buffers.values():
            buf.freebuffer()
        self._buffers.clear()


def sim_overlay(config_or_board, *, directory=None, profile: str | None = None, cycles_per_access: int = 64):
    """A `SpikeloopOverlay` on a `SimDevice`: the simulated board of a configuration (built and
    cached as for the `sim` transport) or of a given board (any `spikeloop.sim.interface.Board`). An
    empty placeholder bitfile is written to `directory` (default: `overlay/` in the simulated boards' cache)."""
    from spikeloop.sim.board import SimBoard, cache_root
    from spikeloop.sim.interface import Board
    from spikeloop.sim.zynq import SimDevice

    board = config_or_board if isinstance(config_or_board, Board) else SimBoard(config_or_board, profile=profile)
    device = SimDevice(board, cycles_per_access=cycles_per_access)
    folder = Path(directory) if directory is not None else cache_root() / "overlay"
    folder.mkdir(parents=True, exist_ok=True)
    bitfile = folder / "spikeloop.bit"
    if not bitfile.exists():
        bitfile.write_bytes(b"")  # pynq's Bitstream wants a file; the SimDevice never reads it
    return SpikeloopOverlay(str(bitfile), device=device)
