"""The cost of the probes in the estimates, and the `--probes` option of `spikeloop estimate` and
`spikeloop verilog` (the probes change the configuration, so its design hash and its Verilog)."""

from __future__ import annotations

import json

from spikeloop.app import cli
from spikeloop.boards import estimate
from spikeloop.config import DEFAULT_CORE, DEFAULT_SIZES, CoreConfig, design_hash
from spikeloop.stream import output_words_per_timestep


def test_the_analytic_model_adds_the_capture_registers_and_the_output_multiplexer():
    plain = CoreConfig.build((60, 20, 7), lanes=[5, 7], chunk=[20, 10], v_bits=[10, 12], u_bits=[9, 14],
                             membranes=True, options=True)
    probed = CoreConfig.build((60, 20, 7), lanes=[5, 7], chunk=[20, 10], v_bits=[10, 12], u_bits=[9, 14],
                              membranes=True, probes=True, options=True)
    v1 = CoreConfig.build((60, 20, 7), lanes=[5, 7], chunk=[20, 10], v_bits=[10, 12], u_bits=[9, 14], probes=True)
    assert [layer.current_bits for layer in v1.layers] == [11, 14]  # without options no input shift: max(7, 10) + 1
    assert estimate.probe_resources(plain) == {}
    total, parts = estimate.analytic(probed, breakdown=True)
    base, base_parts = estimate.analytic(plain, breakdown=True)
    assert set(parts) - set(base_parts) == {"layer 0 probes", "layer 1 probes", "framer probes"}
    # with options, layer 0: every neuron's v' (10 bits) and current (a lif current (syn << 16) + bias:
    # max(9, max(7 + 16, 10) + 1) = 24 bits), the lanes' currents in update stages 4 and 5 (which
    # only the probes read), the output and the skid register
    assert parts["layer 0 probes"].ff == 20 * (10 + 24) + 4 * 5 * 24
    # layer 1 outputs membranes already: only the currents (max(14, max(6 + 16, 12) + 1) = 23 bits)
    assert parts["layer 1 probes"].ff == 7 * 23 + 4 * 7 * 23
    words = output_words_per_timestep(probed, 7)
    assert parts["framer probes"].lut >= 32 * words / 4
    assert total.lut > base.lut and total.ff > base.ff and total.bram == base.bram


def test_estimate_and_verilog_take_probes(capsys, tmp_path):
    out = tmp_path / "e.json"
    assert cli.main(["estimate", "--analytic", "--probes", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--probes" in printed and "probes   of that, analytic:" in printed
    numbers = json.loads(out.read_text())
    assert numbers["config"]["probes"] is True and numbers["config_args"][-1] == "--probes"
    probed = CoreConfig.build(DEFAULT_SIZES, lanes=16, chunk=64, probes=True)
    assert numbers["design_hash"] == design_hash(probed).hex() != design_hash(DEFAULT_CORE).hex()
    assert numbers["analytic"]["ff"] > estimate.analytic(DEFAULT_CORE).ff + 10_000  # every v' and u of 394 neurons
    assert cli.main(["verilog", "--sizes", "12,6,3", "--lanes", "2", "--chunk", "6", "--probes",
                     "--out", str(tmp_path / "v")]) == 0
    manifest = json.loads((tmp_path / "v" / "spikeloop_core.json").read_text())
    assert manifest["config"]["probes"] is True and manifest["words_out"] == 1


def test_estimate_and_verilog_take_options(capsys, tmp_path):
    out = tmp_path / "e.json"
    assert cli.main(["estimate", "--analytic", "--options", "--json", str(out)]) == 0
    numbers = json.loads(out.read_text())
    on = CoreConfig.build(DEFAULT_SIZES, lanes=16, chunk=64, options=True)
    assert numbers["design_hash"] == design_hash(on).hex() != design_hash(DEFAULT_CORE).hex()
    assert "--options" in numbers["config_args"] and CoreConfig.from_params(numbers["config"]) == on
    assert numbers["analytic"]["lut"] > estimate.analytic(DEFAULT_CORE).lut + 10_000  # about 290 LUTs a lane
    assert cli.main(["verilog", "--sizes", "12,6,3", "--lanes", "2", "--chunk", "6", "--options", "0,1",
                     "--out", str(tmp_path / "v")]) == 0
    manifest = json.loads((tmp_path / "v" / "spikeloop_core.json").read_text())
    config = CoreConfig.from_params(manifest["config"])
    assert [layer.options for layer in config.layers] == [False, True]
    assert estimate.flow.config_args(config)[-2:] == ["--options", "0,1"]
