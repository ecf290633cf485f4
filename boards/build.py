"""`make bitstream BOARD=...`: the bitstream of a configuration for a board.

    python -m spikeloop.boards.build --board pynq-z2 --out build/boards/pynq-z2 [--sizes ... --lanes P --chunk C]

pynq-z2: prepares the Vivado folder and runs Vivado (spikeloop.boards.vivado); without `vivado`
on PATH it stops with exit status 3 and says what to copy and run. ulx3s: the open flow
(spikeloop.boards.ulx3s). Before building, the configuration is held against the board's
device with the analytic estimate (xc7) and refused if it does not fit.
Without --sizes, the board's default configuration (spikeloop.boards.devices) is built.
`--clock-mhz` (default the board's `clock_mhz`) is the core clock, refused (exit status 2) when
the board cannot make it (pynq-z2: FCLK_CLK0; ulx3s: the ECP5 PLL). A build whose timing report
misses that clock writes no bitstream and exits with status 4.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spikeloop.config import ConfigError

from . import flow
from .devices import BOARDS, TimingFailed
from .devices import board as get_board

#: Exit status when the Vivado inputs are ready but Vivado is not installed here.
EXIT_NO_VIVADO = 3
#: Exit status when the design misses its clock (no bitstream).
EXIT_TIMING = 4


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m spikeloop.boards.build", description=__doc__.splitlines()[0])
    p.add_argument("--board", default="pynq-z2", help=f"one of {', '.join(BOARDS)}")
    p.add_argument("--out", type=Path, default=None, help="output folder (default build/boards/<board>)")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="core clock in MHz (default the board's: " + ", ".join(f"{b.name} {b.clock_mhz:g}"
                                                                        for b in BOARDS.values())
                        + "; pynq-z2: the PS's FCLK_CLK0, ulx3s: the ECP5 PLL's output)")
    p.add_argument("--jobs", type=int, default=2, help="Vivado jobs")
    flow.add_config_arguments(p)
    args = p.parse_args(argv)
    try:
        board = get_board(args.board)
        config = flow.config_from_args(args, default_sizes=board.default_sizes, default_lanes=board.default_lanes,
                                       default_chunk=board.default_chunk)
        out = args.out or flow.BUILD / "boards" / board.name
        clock_mhz = board.clock_mhz if args.clock_mhz is None else args.clock_mhz
        if board.flow == "vivado":
            from . import estimate, vivado

            estimate.check_fit(estimate.analytic(config), board, source="analytic")
            try:
                bit = vivado.build(config, out, clock_mhz=clock_mhz, jobs=args.jobs)
            except vivado.VivadoMissing as e:
                print(f"make bitstream: {e}", file=sys.stderr)
                return EXIT_NO_VIVADO
        else:
            from . import ulx3s

            bit = ulx3s.build(config, out, clock_mhz=clock_mhz)
        meta = json.loads((Path(bit).parent / "spikeloop.json").read_text())
        print(f"{bit} (design hash {meta['design_hash'][:16]}..., {meta.get('build_seconds', '?')} s)")
        if "fmax_mhz" in meta:
            util = ", ".join(f"{name} {used}/{avail}" for name, (used, avail) in meta["utilization"].items())
            print(f"fmax {meta['fmax_mhz']} MHz (clock {meta['clock_mhz']:g} MHz); {util}")
        return 0
    except TimingFailed as e:
        print(f"make bitstream: error: {e}", file=sys.stderr)
        return EXIT_TIMING
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"make bitstream: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
