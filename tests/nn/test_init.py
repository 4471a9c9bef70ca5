"""Initialisers: seeded, the right statistics, the right gains."""
import math

import numpy as np
import pytest

from spago import nn
from spago.errors import SpagoError
from spago.nn import init
from spago.ops import Generator

SHAPE = (200, 300)  # fan_in 300, fan_out 200: 60 000 draws, enough for 2 % on the moments
FAN_IN, FAN_OUT = 300, 200


def param(shape=SHAPE):
    return nn.Param(np.zeros(shape), "float64")


RANDOM = {
    "uniform": lambda p, g: init.uniform(p, -2.0, 3.0, generator=g),
    "normal": lambda p, g: init.normal(p, 1.0, 0.5, generator=g),
    "xavier_uniform": lambda p, g: init.xavier_uniform(p, generator=g),
    "xavier_normal": lambda p, g: init.xavier_normal(p, generator=g),
    "kaiming_uniform": lambda p, g: init.kaiming_uniform(p, generator=g),
    "kaiming_normal": lambda p, g: init.kaiming_normal(p, generator=g),
    "achlioptas": lambda p, g: init.achlioptas(p, generator=g),
}


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_same_seed_gives_same_values(name):
    fill = RANDOM[name]
    a = fill(param((6, 5)), Generator(7)).numpy()
    b = fill(param((6, 5)), Generator(7)).numpy()
    c = fill(param((6, 5)), Generator(8)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    gen = Generator(7)  # draws advance the generator
    assert not np.array_equal(fill(param((6, 5)), gen).numpy(), fill(param((6, 5)), gen).numpy())


def test_initialisers_fill_in_place_and_keep_the_dtype():
    p = nn.Param(np.zeros((3, 4), np.float32))
    array = p.numpy()
    assert init.xavier_uniform(p, generator=Generator(0)) is p
    assert p.numpy() is array and p.dtype == np.float32 and np.any(array != 0)


def assert_uniform(values, low, high):
    assert values.min() >= low and values.max() <= high
    assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low)
    assert abs(values.mean() - (low + high) / 2) < 0.02 * (high - low)
    np.testing.assert_allclose(values.std(), (high - low) / math.sqrt(12), rtol=0.02)


def assert_normal(values, mean, std):
    assert abs(values.mean() - mean) < 0.02 * std
    np.testing.assert_allclose(values.std(), std, rtol=0.02)


def test_uniform_and_normal_statistics():
    assert_uniform(init.uniform(param(), -2.0, 3.0, generator=Generator(0)).numpy(), -2.0, 3.0)
    assert_normal(init.normal(param(), 1.0, 0.5, generator=Generator(0)).numpy(), 1.0, 0.5)


def test_xavier_statistics():
    a = math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert_uniform(init.xavier_uniform(param(), generator=Generator(0)).numpy(), -a, a)
    assert_uniform(init.xavier_uniform(param(), gain=2.0, generator=Generator(0)).numpy(), -2 * a, 2 * a)
    assert_normal(init.xavier_normal(param(), generator=Generator(0)).numpy(), 0.0,
                  math.sqrt(2.0 / (FAN_IN + FAN_OUT)))


def test_kaiming_statistics():
    bound = math.sqrt(2.0) * math.sqrt(3.0 / FAN_IN)
    assert_uniform(init.kaiming_uniform(param(), generator=Generator(0)).numpy(), -bound, bound)
    bound_out = math.sqrt(3.0 / FAN_OUT) * 5 / 3
    assert_uniform(init.kaiming_uniform(param(), "tanh", "fan_out", generator=Generator(0)).numpy(),
                   -bound_out, bound_out)
    assert_normal(init.kaiming_normal(param(), generator=Generator(0)).numpy(), 0.0, math.sqrt(2.0 / FAN_IN))
    assert_normal(init.kaiming_normal(param(), "linear", "fan_out", generator=Generator(0)).numpy(), 0.0,
                  1.0 / math.sqrt(FAN_OUT))


def test_fans_of_convolution_weights_include_the_kernel():
    assert init.fans((8, 3, 5, 5)) == (75, 200)
    assert init.fans((8, 3, 5)) == (15, 40)
    assert init.fans((7,)) == (7, 7)
    with pytest.raises(SpagoError, match="at least one axis"):
        init.fans(())


def test_achlioptas_values_and_frequencies():
    values = init.achlioptas(param(), generator=Generator(0)).numpy()
    root3 = math.sqrt(3.0)
    assert set(np.unique(values)) <= {-root3, 0.0, root3}
    n = values.size
    np.testing.assert_allclose(np.count_nonzero(values == 0.0) / n, 2 / 3, atol=0.01)
    np.testing.assert_allclose(np.count_nonzero(values == root3) / n, 1 / 6, atol=0.01)
    np.testing.assert_allclose(np.count_nonzero(values == -root3) / n, 1 / 6, atol=0.01)
    np.testing.assert_allclose(values.var(), 1.0, rtol=0.03)  # unit variance by design


def test_constant_zeros_ones():
    np.testing.assert_array_equal(init.constant(param((2, 2)), 0.5).numpy(), np.full((2, 2), 0.5))
    np.testing.assert_array_equal(init.zeros(param((2, 2))).numpy(), np.zeros((2, 2)))
    np.testing.assert_array_equal(init.ones(param((2, 2))).numpy(), np.ones((2, 2)))


def test_gain_values():
    assert init.gain("linear") == 1.0
    assert init.gain("sigmoid") == 1.0
    assert init.gain("relu") == pytest.approx(math.sqrt(2.0))
    assert init.gain("tanh") == pytest.approx(5.0 / 3.0)
    assert init.gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2.0 / 1.04))
    with pytest.raises(SpagoError, match="unknown nonlinearity 'swish'"):
        init.gain("swish")


def test_default_generator_is_reseeded_by_manual_seed():
    import spago

    spago.manual_seed(3)
    a = init.normal(param((4, 4))).numpy()
    spago.manual_seed(3)
    np.testing.assert_array_equal(init.normal(param((4, 4))).numpy(), a)


def test_kaiming_rejects_an_unknown_mode():
    with pytest.raises(SpagoError, match="mode must be 'fan_in' or 'fan_out', got 'fan_avg'"):
        init.kaiming_uniform(param((3, 3)), mode="fan_avg")
    with pytest.raises(SpagoError, match="mode must be"):
        init.kaiming_normal(param((3, 3)), mode="in")


def test_large_tables_fill_in_chunks_with_the_values_of_one_draw():
    """An embedding table is filled without a float64 copy of itself (BERT's 30522 x 384 words would
    take 94 MB more at load): the peak of traced allocations stays near the table, the values are those
    of one draw of the whole shape."""
    import tracemalloc

    shape = (3 * init.CHUNK // 256 + 7, 256)
    for fill, draw in ((lambda p, g: init.normal(p, 0.5, 2.0, g), lambda r: r.normal(0.5, 2.0, shape)),
                       (lambda p, g: init.uniform(p, -0.1, 0.3, g), lambda r: r.uniform(-0.1, 0.3, shape))):
        p = nn.Param(np.zeros(shape, np.float32))
        tracemalloc.start()
        fill(p, Generator(11))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 3 * init.CHUNK * 8  # a few chunks, not the 4.4 MB float64 table
        np.testing.assert_array_equal(p.numpy(), draw(Generator(11).numpy()).astype(np.float32))


def test_skip_init_draws_nothing_and_leaves_zeros_untouched():
    """Inside skip_init (loading weights next) initialisers draw nothing; zero parameters are fresh
    lazily zeroed arrays, not copies; given values are still copied; outside it, all as before."""
    with init.skip_init():
        assert init.skipping_init()
        layer = nn.Linear(64, 32)
        table = nn.Embedding(1000, 16)
        kept = nn.Param(np.full(3, 2.0, np.float32))
        drawn = init.normal(nn.Param(np.zeros(5)), 1.0, 1.0)
    assert not init.skipping_init()
    assert not layer.weight.numpy().any() and not table.weight.numpy().any() and not drawn.numpy().any()
    assert table.weight.dtype == np.float32 and table.weight.numpy().flags.writeable
    assert kept.numpy().tolist() == [2.0, 2.0, 2.0]
    assert nn.Linear(64, 32).weight.numpy().any()
