"""The board side of PYNQ 4.0's remote-device protocol (gRPC), served by a simulated board (any
`spikeloop.sim.interface.Board`: the Verilated `SimBoard` or the `GoldenBoard`), so that pynq's own
client (`pynq.pl_server.remote_device.RemoteDevice`, what `PYNQ_REMOTE_DEVICES=<ip>` makes) drives a
spikeloop overlay, its MMIO and its AXI DMA over a real network connection.

    with RemoteBoard(SimBoard(config)) as server:             # 127.0.0.1, an ephemeral port
        device = RemoteDevice(ip_addr="127.0.0.1", port=server.port)
        core = open_core("pynq", device=device, bitfile=bit)  # bit, hwh beside it: write_overlay_files

Services (the generated servicers of `pynq.remote`):
- RemoteDevice: a small file system (`/proc/version` of a 32-bit ARM, the board name, the FPGA
  manager's `state`, `flags` and `firmware`, `/lib/firmware/`); writing a name to
  `/sys/class/fpga_manager/fpga0/firmware` programs that file: the simulated core and the DMA are
  reset (the simulated design is fixed when the server starts; the bitstream's bytes are kept, not
  executed). `set_bitstream_attrs`, `shutdown`, `set_pl_clk` and `download` answer as a board does.
- Mmio: windows onto the core, the DMA model (`zynq.SimPL`, shared with `SimDevice`) and the
  Zynq's clock registers (SLCR at 0xF8000000, which pynq reads and writes to set the PL clocks).
- RemoteBuffer: DDR buffers with a CPU-side and a device-side copy (flush/invalidate as on a board).
- Gpio: no PS GPIO is wired in the overlay; every call is answered with an error message.
"""

from __future__ import annotations

import argparse
import faulthandler
import threading
from concurrent import futures

import grpc
import numpy as np
from pynq.remote import (
    buffer_pb2,
    buffer_pb2_grpc,
    gpio_pb2,
    gpio_pb2_grpc,
    mmio_pb2,
    mmio_pb2_grpc,
    remote_device_pb2,
    remote_device_pb2_grpc,
)

from .interface import Board
from .zynq import SimPL

__all__ = ["RemoteBoard", "PORT", "SLCR_BASE", "STALL_LIMIT", "main"]

#: pynq's port for remote devices.
PORT = 7967
SLCR_BASE, SLCR_SPAN = 0xF800_0000, 0x1000
#: SLCR words at power-up (PYNQ-Z2, 50 MHz reference): ARM PLL x26, DDR PLL x21, IO PLL x20; CPU clock
#: ARM PLL / 2; FCLK0..3 from the IO PLL / 5 / 2 = 100 MHz.
_SLCR_RESET = {0x100: 26 << 12, 0x104: 21 << 12, 0x108: 20 << 12, 0x120: 2 << 8,
               **{0x170 + 0x10 * i: (2 << 20) | (5 << 8) for i in range(4)}}
FPGA_MANAGER = "/sys/class/fpga_manager/fpga0/"
FIRMWARE = "/lib/firmware/"
_CHUNK = 1 << 20


class _Slcr:
    """The Zynq's system-level control registers as plain memory with their reset values."""

    def __init__(self):
        self.words = dict(_SLCR_RESET)

    def read(self, offset: int) -> int:
        return self.words.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        self.words[offset] = value & 0xFFFFFFFF


class _Files:
    """The few files a PYNQ client reads and writes on its board."""

    def __init__(self, board_name: str, on_program):
        self.data = {
            "/proc/version": b"Linux version 6.6.10-xilinx (spikeloop simulated board) #1 SMP PREEMPT armv7l\n",
            "/proc/device-tree/chosen/pynq_board": board_name.encode() + b"\0",
            FPGA_MANAGER + "state": b"operating\n", FPGA_MANAGER + "flags": b"0\n", FPGA_MANAGER + "firmware": b"",
        }
        self.on_program = on_program

    def exists(self, path: str) -> bool:
        folder = path.rstrip("/") + "/"
        return path in self.data or any(name.startswith(folder) for name in self.data)

    def write(self, path: str, data: bytes) -> str:
        """Store `data`; an empty string, or why the write was refused."""
        if path == FPGA_MANAGER + "firmware":
            name = data.decode(errors="replace").strip().strip("\0")
            if FIRMWARE + name not in self.data:
                return f"{FIRMWARE}{name} does not exist: copy the bitstream there first"
            self.on_program(name)
        elif not (path.startswith(FIRMWARE) or path.startswith(FPGA_MANAGER)):
            return f"{path}: only {FIRMWARE} and {FPGA_MANAGER} are writable on this board"
        self.data[path] = bytes(data)
        return ""


class _Service:
    """What the services share: the server (its `SimPL`, files, SLCR) and its lock, which serializes
    every access to the simulated board."""

    def __init__(self, server: RemoteBoard):
        self.server = server
        self.pl: SimPL = server.pl
        self.lock = server.lock


class _DeviceService(_Service, remote_device_pb2_grpc.RemoteDeviceServicer):
    """Files, bitstream attributes, programming."""

    def existsfile(self, request, context):
        return remote_device_pb2.ExistsFileResponse(exists=self.server.files.exists(request.file_path))

    def readfile(self, request, context):
        data = self.server.files.data.get(request.file_path)
        if data is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.file_path}: no such file on the board")
        for start in range(0, max(len(data), 1), _CHUNK):
            yield remote_device_pb2.ReadFileResponse(data=data[start : start + _CHUNK])

    def writefile(self, request_iterator, context):
        path, data = None, bytearray()
        for chunk in request_iterator:
            path = path or chunk.file_path
            data += chunk.data
        if path is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "writefile: no request carried a file path")
        with self.lock:
            why = self.server.files.write(path, bytes(data))
        if why:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, why)
        return remote_device_pb2.WriteFileResponse()

    def set_bitstream_attrs(self, request, context):
        self.server.bitstream_attrs = {"binfile_name": request.binfile_name, "partial": request.partial}
        return remote_device_pb2.SetBitstreamAttrsResponse(status=True)

    def shutdown(self, request, context):
        return remote_device_pb2.ShutdownResponse(status=True)

    def set_pl_clk(self, request, context):
        return remote_device_pb2.SetPlClkResponse(status=True)

    def download(self, request_iterator, context):
        for _ in request_iterator:
            pass
        with self.lock:
            self.server.program("download")
        return remote_device_pb2.DownloadResponse(status=True)


class _MmioService(_Service, mmio_pb2_grpc.MmioServicer):
    """Register windows: the core and the DMA (`SimPL`), the SLCR."""

    def __init__(self, server: RemoteBoard):
        super().__init__(server)
        self.mmios: dict[str, tuple[int, int]] = {}

    def get_mmio(self, request, context):
        base, length = int(request.base_addr), int(request.length)
        slcr = SLCR_BASE <= base and base + length <= SLCR_BASE + SLCR_SPAN
        if length <= 0 or not (slcr or self.pl.maps(base, length)):
            return mmio_pb2.GetMmioResponse(status=False, msg=f"no slave maps {length} bytes at {base:#x} on this "
                                            "board (the core, the AXI DMA and the SLCR are mapped)")
        with self.lock:
            mmio_id = f"mmio{len(self.mmios)}"
            self.mmios[mmio_id] = (base, length)
        return mmio_pb2.GetMmioResponse(status=True, mmio_id=mmio_id)

    def _address(self, mmio_id: str, offset: int, nbytes: int) -> int:
        if mmio_id not in self.mmios:
            raise ValueError(f"unknown mmio_id {mmio_id!r}")
        base, length = self.mmios[mmio_id]
        if offset < 0 or offset % 4 or offset + nbytes > length:
            raise ValueError(f"offset {offset:#x} (+{nbytes} bytes) outside the {length}-byte window at {base:#x} "
                             "or not word aligned")
        return base + offset

    def _read_word(self, address: int) -> int:
        if SLCR_BASE <= address < SLCR_BASE + SLCR_SPAN:
            return self.server.slcr.read(address - SLCR_BASE)
        return self.pl.bus_read(address)

    def _write_word(self, address: int, value: int) -> None:
        if SLCR_BASE <= address < SLCR_BASE + SLCR_SPAN:
            self.server.slcr.write(address - SLCR_BASE, value)
        else:
            self.pl.bus_write(address, value)

    def read(self, request, context):
        length = int(request.length) or 4
        try:
            if length not in (1, 2, 4, 8):
                raise ValueError(f"a read of {length} bytes: 1, 2, 4 or 8")
            with self.lock:
                address = self._address(request.mmio_id, int(request.offset), max(length, 4))
                low = self._read_word(address)
                if length == 8:
                    high = self._read_word(address + 4)
                    value = (high << 32 | low) if request.word_order != "big" else (low << 32 | high)
                else:
                    value = low & ((1 << 8 * length) - 1)
        except (ValueError, MemoryError) as exc:
            return mmio_pb2.ReadResponse(status=False, msg=str(exc))
        return mmio_pb2.ReadResponse(status=True, data=value)

    def write(self, request, context):
        data = bytes(request.data)
        try:
            if not data or len(data) % 4:
                raise ValueError(f"a write of {len(data)} bytes: a whole number of 32-bit words")
            words = np.frombuffer(data, "<u4")
            with self.lock:
                address = self._address(request.mmio_id, int(request.offset), len(data))
                for k, word in enumerate(words):
                    self._write_word(address + 4 * k, int(word))
        except (ValueError, MemoryError) as exc:
            return mmio_pb2.WriteResponse(status=False, msg=str(exc))
        return mmio_pb2.WriteResponse(status=True)


class _BufferService(_Service, buffer_pb2_grpc.RemoteBufferServicer):
    """DDR buffers: the client's cache is its local copy; `write`/`read` reach the board CPU's view,
    `flush`/`invalidate` move bytes between that view and what the DMA sees."""

    def __init__(self, server: RemoteBoard):
        super().__init__(server)
        self.sizes: dict[int, int] = {}

    def _bo(self, buffer_id: str) -> int:
        try:
            bo = int(buffer_id)
        except ValueError:
            bo = -1
        if bo not in self.pl.memory.buffers:
            raise KeyError(f"unknown buffer_id {buffer_id!r} (freed, or never allocated)")
        return bo

    def allocate(self, request, context):
        if request.size <= 0:
            return buffer_pb2.AllocateResponse(msg=f"a buffer of {request.size} bytes: the size must be > 0")
        with self.lock:
            bo, _, _ = self.pl.memory.reserve(int(request.size))
            self.sizes[bo] = int(request.size)
        return buffer_pb2.AllocateResponse(buffer_id=str(bo))

    def write(self, request_iterator, context):
        offset = 0
        with self.lock:
            for chunk in request_iterator:
                try:
                    _, host, _ = self.pl.memory.buffers[self._bo(chunk.buffer_id)]
                except KeyError as exc:
                    return buffer_pb2.BufferWriteResponse(msg=str(exc.args[0]))
                start = int(chunk.start) if chunk.start or chunk.end else offset
                data = np.frombuffer(chunk.data, np.uint8)
                if start + data.size > host.size:
                    return buffer_pb2.BufferWriteResponse(msg=f"a write of {data.size} bytes at {start} overruns "
                                                              f"buffer {chunk.buffer_id} ({host.size} bytes)")
                host[start : start + data.size] = data
                offset = start + data.size
        return buffer_pb2.BufferWriteResponse()

    def read(self, request, context):
        try:
            bo = self._bo(request.buffer_id)
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc.args[0]))
        size = self.sizes[bo]
        start, end = int(request.start), int(request.end) or size
        if not 0 <= start <= end <= size:
            context.abort(grpc.StatusCode.OUT_OF_RANGE, f"bytes {start}..{end} of a {size}-byte buffer")
        with self.lock:
            data = self.pl.memory.buffers[bo][1][start:end].tobytes()
        for k in range(start, max(end, start + 1), _CHUNK):
            yield buffer_pb2.BufferReadResponse(data=data[k - start : k - start + _CHUNK])

    def _sync(self, request, method, response):
        try:
            with self.lock:
                bo = self._bo(request.buffer_id)
                method(bo, 0, self.sizes[bo])
        except KeyError as exc:
            return response(msg=str(exc.args[0]))
        return response()

    def flush(self, request, context):
        return self._sync(request, self.pl.memory.flush, buffer_pb2.FlushResponse)

    def invalidate(self, request, context):
        return self._sync(request, self.pl.memory.invalidate, buffer_pb2.InvalidateResponse)

    def freebuffer(self, request, context):
        with self.lock:
            try:
                bo = self._bo(request.buffer_id)
            except KeyError as exc:
                return buffer_pb2.FreeBufferResponse(msg=str(exc.args[0]))
            self.pl.memory.free(bo)
            self.sizes.pop(bo, None)
        return buffer_pb2.FreeBufferResponse()

    def _address_of(self, request, virtual: bool):
        try:
            address = self.pl.memory.buffers[self._bo(request.buffer_id)][0]
        except KeyError as exc:
            return buffer_pb2.AddressResponse(msg=str(exc.args[0]))
        return buffer_pb2.AddressResponse(address=address + (0xB000_0000 if virtual else 0))

    def physical_address(self, request, context):
        return self._address_of(request, False)

    def virtual_address(self, request, context):
        return self._address_of(request, True)

    def cacheable(self, request, context):
        return buffer_pb2.CacheableResponse(cacheable=True)


class _GpioService(_Service, gpio_pb2_grpc.GpioServicer):
    """No PS GPIO is wired in the overlay."""

    def get_gpio(self, request, context):
        return gpio_pb2.GetGpioResponse(message=f"GPIO {request.index}: the spikeloop overlay wires no PS GPIO")

    def get_gpio_base_path(self, request, context):
        return gpio_pb2.GetGpioBasePathResponse(base_path="")

    def get_gpio_npins(self, request, context):
        return gpio_pb2.GetGpioNPinsResponse(npins=0)


#: Longest a stalled board holds a call (`RemoteBoard.stall`), so that a forgotten stall cannot hang a test run.
STALL_LIMIT = 60.0


class _Stall(grpc.ServerInterceptor):
    """Holds every call while the board is stalled: connected, but answering nothing."""

    def __init__(self):
        self.answering = threading.Event()
        self.answering.set()

    def intercept_service(self, continuation, handler_call_details):
        self.answering.wait(STALL_LIMIT)
        return continuation(handler_call_details)


class RemoteBoard:
    """A gRPC server playing a PYNQ board with the spikeloop overlay, backed by a simulated board.

    `target`: any `Board` (a `SimBoard` or a `GoldenBoard`). `host`/`port`: where to listen (port 0: an
    ephemeral port, see `.port`).
    `cycles_per_access`: clock cycles that pass on each DMA register access (as for `SimDevice`).
    `workers`: threads answering calls (calls on the simulated board run one at a time).
    `stall()` / `resume()`: stop answering while staying connected (what a hung board does), and
    answer again.
    """

    def __init__(self, target, *, host: str = "127.0.0.1", port: int = 0, board_name: str = "Pynq-Z2",
                 cycles_per_access: int = 64, workers: int = 4):
        if not isinstance(target, Board):
            raise TypeError(f"target must be a Board (a SimBoard or a GoldenBoard), not {type(target).__name__}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port={port!r}: must be an integer in 0..65535 (0: any free port)")
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers={workers!r}: must be an integer >= 1")
        self.pl = SimPL(target, cycles_per_access=cycles_per_access)
        self.lock = threading.RLock()
        self.slcr = _Slcr()
        self.files = _Files(board_name, self.program)
        self.programmed: list[str] = []
        self.bitstream_attrs: dict = {}
        # Without SO_REUSEPORT (gRPC's default on Linux) a second server on a port in use is refused
        # instead of silently sharing it.
        self._stall = _Stall()
        self._executor = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pynq-remote")
        self._server = grpc.server(self._executor, options=[("grpc.so_reuseport", 0)], interceptors=[self._stall])
        remote_device_pb2_grpc.add_RemoteDeviceServicer_to_server(_DeviceService(self), self._server)
        mmio_pb2_grpc.add_MmioServicer_to_server(_MmioService(self), self._server)
        buffer_pb2_grpc.add_RemoteBufferServicer_to_server(_BufferService(self), self._server)
        gpio_pb2_grpc.add_GpioServicer_to_server(_GpioService(self), self._server)
        self.host = host
        try:
            self.port = self._server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {host}:{port}: {exc}") from None
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port} (in use, or not an address of this machine)")
        self._server.start()
        self._stopped = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def program(self, name: str) -> None:
        """Configure the PL with the firmware file `name`: here, reset the simulated core and the DMA."""
        with self.lock:
            self.pl.download()
            self.programmed.append(name)

    def stall(self) -> None:
        """Stop answering, staying connected: every call waits (at most `STALL_LIMIT` s) until `resume()`."""
        self._stall.answering.clear()

    def resume(self) -> None:
        """Answer again, the held calls first."""
        self._stall.answering.set()

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving: calls in flight get `grace` seconds, then are cancelled; waits until stopped."""
        if self._stopped:
            return
        self._stopped = True
        self.resume()
        self._server.stop(grace).wait(grace + 5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


#: Seconds a stopped server's process may take to exit.
EXIT_GRACE = 30.0


def main(argv=None) -> int:
    """Serve a simulated board to PYNQ remote-device clients until Ctrl-C."""
    from .board import SimBoard, add_served_core_arguments, serve_until_interrupted, served_core
    from .golden_board import GoldenBoard
    from .zynq import write_overlay_files

    parser = argparse.ArgumentParser(prog="python -m spikeloop.sim.pynq_remote", description=__doc__.splitlines()[0])
    add_served_core_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0: all)")
    parser.add_argument("--port", type=int, default=PORT, help=f"port ({PORT}, pynq's; 0: any free port)")
    parser.add_argument("--overlay-dir", default="pynq-remote-overlay",
                        help="where to write spikeloop.bit/.hwh for the client (pynq reads the .hwh locally)")
    parser.add_argument("--golden", action="store_true", help="serve the golden board, not the simulated one")
    args = parser.parse_args(argv)
    _, config = served_core(args)
    bit = write_overlay_files(args.overlay_dir, config)
    target = GoldenBoard(config) if args.golden else SimBoard(config, profile=args.profile, log=print)
    with RemoteBoard(target, host=args.host, port=args.port) as server:
        print(f"serving a {'-'.join(map(str, config.sizes))} core at {server.address}; the client's overlay: {bit}\n"
              f"  PYNQ_REMOTE_DEVICES={args.host} (port {PORT}) or RemoteDevice(ip_addr=\"{args.host}\", "
              f"port={server.port}); open_core(\"pynq\", device=..., bitfile=\"{bit}\")  (Ctrl-C stops)", flush=True)
        serve_until_interrupted()
    target.close()
    # Serving has stopped. Should a third-party thread still keep the interpreter from exiting, leave
    # after EXIT_GRACE seconds with every thread's stack on stderr instead of hanging.
    faulthandler.dump_traceback_later(EXIT_GRACE, exit=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
