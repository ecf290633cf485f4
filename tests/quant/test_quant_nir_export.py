"""spikeloop -> NIR -> the float simulators' own NIR readers: snnTorch 1.0's `import_from_nir` (run here) and
Norse 1.1.0's `from_nir` (recorded by tests/fixtures/nir/record_norse_readback.py) give the golden model's
output spikes: equal where nothing decays, nearly equal where the integer decays round (docs/nir.md)."""

import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from spikeloop.network import Network
from spikeloop.quant.nir import (
    NIRError,
    NIRReaderWarning,
    agreement,
    from_nir,
    read_nir,
    read_recording,
    to_nir,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nir"
sys.path.insert(0, str(FIXTURES))
import export_for_readers  # noqa: E402

#: fixture -> (import options, least agreement of output spike bits with snnTorch's reader)
SNNTORCH = {
    "snntorch_b1_zero": ({"reset": "zero"}, 1.0),  # no decay: float and integer agree exactly
    "snntorch_b0.9_zero": ({"reset": "zero"}, 0.999),
    "norse_lifbox": ({"source": "norse"}, 0.999),
    "norse_lif": ({"source": "norse"}, 0.999),  # a cuba layer: snnTorch's Synaptic
}
#: fixture -> least agreement with Norse's reader (snntorch_b1_zero has no decay: exact)
NORSE = {"snntorch_b1_zero": 1.0, "snntorch_b0.9_zero": 0.999, "norse_lifbox": 0.999, "norse_lif": 0.999}


def _network(name, options):
    return from_nir(read_nir(FIXTURES / f"{name}.nir", type_check=False), **options).network


def _run_snntorch(module, inputs):
    from snntorch import utils

    utils.reset(module)
    x = torch.as_tensor(inputs, dtype=torch.float32)
    with torch.no_grad():
        out = [module(x[:, t])[0] for t in range(x.shape[1])]
    return torch.stack(out, 1).numpy() > 0


@pytest.mark.parametrize("name", SNNTORCH)
def test_snntorch_reads_back_the_export(name):
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    options, least = SNNTORCH[name]
    network = _network(name, options)
    inputs, _ = read_recording(FIXTURES / f"{name}.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = to_nir(network, reader="snntorch")
    leaky = any(layer.lam for layer in network.layers)
    assert [w.category for w in caught] == [NIRReaderWarning] * sum(
        1 for layer in network.layers if layer.lam or layer.alpha)
    assert leaky == bool(caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # snnTorch's reader prints and warns about nirtorch's API
        theirs = _run_snntorch(import_from_nir(graph), inputs)
    a = agreement(network, inputs, theirs)
    print(f"{name} -> NIR -> snnTorch: {100 * a.bits:.3f}% of output spike bits, {a.spikes} / {a.reference_spikes}")
    assert a.spikes > 0 and theirs.any() and not theirs.all(), f"{name}: vacuous comparison"
    assert a.bits >= least and a.predictions >= 0.99, f"{name}: {a}"
    # and spikeloop reads its own export for snnTorch back as the same network
    assert from_nir(graph).network.content_hash == network.content_hash


@pytest.mark.parametrize("name", NORSE)
def test_norse_reads_back_the_export(name):
    network = export_for_readers.network(name)
    inputs, _ = read_recording(FIXTURES / f"{name}.npz")
    rec_inputs, theirs = read_recording(FIXTURES / f"readback_{name}_norse.npz")
    assert np.array_equal(rec_inputs, inputs)
    a = agreement(network, inputs, theirs)
    print(f"{name} -> NIR -> Norse: {100 * a.bits:.3f}% of output spike bits, {a.spikes} / {a.reference_spikes}")
    assert a.spikes > 0 and theirs.any() and not theirs.all(), f"{name}: vacuous comparison"
    assert a.bits >= NORSE[name] and a.predictions >= 0.99, f"{name}: {a}"


#: every network recorded as Norse read it (tests/fixtures/nir/record_norse_readback.py), recurrent ones included
READBACKS = (*NORSE, "snntorch_rleaky_b0.9_subtract", "nir_paper_braille_noDelay_bias_zero")


@pytest.mark.parametrize("name", READBACKS)
def test_the_graphs_norse_read_are_what_to_nir_writes(name):
    """The recorded readback is of today's export; spikeloop reads that export back as the same network."""
    written = nir.read(FIXTURES / f"readback_{name}.nir")
    graph = export_for_readers.export(name)
    assert written.edges == graph.edges and written.nodes.keys() == graph.nodes.keys()
    for key, node in graph.nodes.items():
        for field in ("weight", "bias", "tau", "tau_syn", "tau_mem", "r", "w_in", "v_threshold"):
            if hasattr(node, field):
                assert np.array_equal(getattr(written.nodes[key], field), getattr(node, field)), (key, field)
    assert from_nir(graph).network.content_hash == export_for_readers.network(name).content_hash


def test_export_for_a_reader_refuses_what_it_cannot_express():
    subtract = _network("snntorch_b0.9_subtract", {"reset": "subtract_next"})
    with pytest.raises(NIRError) as info:
        to_nir(subtract, reader="snntorch", dt=1e-3)
    text = str(info.value)
    assert text.startswith("3 problem(s) exporting for snntorch:")
    assert "dt = 0.001, expected 0.0001: snnTorch 1.0's import_from_nir takes every time constant at" in text
    assert ("layer 0 (lif0): reset = 'subtract_next', expected 'zero': snnTorch 1.0's import_from_nir builds every "
            "neuron with a reset to zero at the spike's step (snnTorch's Leaky(reset_mechanism='subtract') computes "
            "subtract_next") in text and "layer 1 (lif1): reset = 'subtract_next'" in text
    with pytest.raises(NIRError, match=r"layer 0 \(lif0\): reset = 'subtract_next', expected 'zero': Norse 1.1.0's "
                                       r"from_nir builds every neuron with a reset to zero"):
        to_nir(subtract, reader="norse")
    with pytest.raises(NIRError, match="reader = 'lava', expected one of snntorch, norse or None"):
        to_nir(subtract, reader="lava")
    network = _network("snntorch_b0.9_zero", {"reset": "zero"})
    theta = network.layers[1].theta.copy()
    theta[0] += 1
    uneven = Network((network.layers[0], network.layers[1].replace(theta=theta)))
    with pytest.raises(NIRError, match=r"^1 problem\(s\) exporting for snntorch: layer 1 \(lif1\): theta differs "
                                       r"across the layer's neurons, expected one value"):
        to_nir(uneven, reader="snntorch")
    to_nir(uneven, reader="norse")  # Norse takes a threshold per neuron

def test_export_for_a_reader_warns_by_name_where_it_is_approximate():
    network = _network("snntorch_b0.9_zero", {"reset": "zero"})
    with pytest.warns(NIRReaderWarning, match=r"layer 0 \(lif0\): decay_round = 'nearest' rounds every decay to an "
                                              r"integer; Norse 1.1.0's from_nir decays in float"):
        to_nir(network, reader="norse")
    exact = _network("snntorch_b1_zero", {"reset": "zero"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no decay, nothing approximate: no warning
        to_nir(exact, reader="snntorch")
        to_nir(exact, reader="norse")


def test_nir_export_command_writes_for_a_reader(tmp_path, capsys):
    from spikeloop.app.cli import main

    image = tmp_path / "net.npz"
    _network("snntorch_b0.9_zero", {"reset": "zero"}).save(image)
    assert main(["nir", "export", "--network", str(image), "--out", str(tmp_path / "a" / "net.nir"),
                 "--reader", "snntorch"]) == 0
    out, err = capsys.readouterr()
    assert "for snntorch's reader" in out and "warning: layer 0 (lif0): decay_round = 'nearest'" in err
    assert isinstance(nir.read(tmp_path / "a" / "net.nir").nodes["lif0"], nir.LIF)
    assert main(["nir", "export", "--network", str(image), "--out", str(tmp_path / "b.nir"), "--reader", "snntorch",
                 "--dt", "1e-3"]) == 2
    assert "dt = 0.001, expected 0.0001" in capsys.readouterr().err
