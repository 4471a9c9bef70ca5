"""What a PyTorch or Hugging Face user reaches for works in spago, as an alias of spago's own API."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import spago as sp
from spago import losses, nn, ops, optim
from spago.errors import SpagoError

RNG = np.random.default_rng(0)
FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures"))


def data(*shape):
    return RNG.standard_normal(shape).astype("float32")


# ----------------------------------------------------------------------------- ops: dim / keepdim

def _takes(fn, name):
    return name in inspect.signature(inspect.unwrap(fn)).parameters


AXIS_OPS = sorted(name for name in dir(ops) if not name.startswith("_") and inspect.isfunction(getattr(ops, name))
                  and (_takes(getattr(ops, name), "axis") or _takes(getattr(ops, name), "keepdims")))


def test_every_op_with_axis_takes_dim():
    assert {"sum", "mean", "max", "softmax", "concat", "stack", "squeeze", "argmax", "logsumexp"} <= set(AXIS_OPS)
    for name in AXIS_OPS:  # one wrapper for the whole op API: every such function is wrapped
        fn = getattr(ops, name)
        assert fn is not inspect.unwrap(fn), name
        assert getattr(sp, name) is fn or name not in sp.__dict__, name


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax", "argmin"])
def test_reductions_dim_keepdim(name):
    x = sp.tensor(data(2, 3, 4))
    want = getattr(ops, name)(x, axis=1, keepdims=True).numpy()
    assert np.array_equal(getattr(ops, name)(x, dim=1, keepdim=True).numpy(), want)
    assert np.array_equal(getattr(x, name)(dim=1, keepdim=True).numpy(), want)


def test_shape_ops_dim_and_errors():
    x = sp.tensor(data(2, 3))
    assert sp.cat([x, x], dim=1).shape == (2, 6) and sp.cat is sp.concat
    assert ops.stack([x, x], dim=0).shape == (2, 2, 3)
    assert x.softmax(dim=0).numpy().sum(0) == pytest.approx([1, 1, 1])
    assert x.unsqueeze(dim=0).shape == (1, 2, 3) and ops.flatten(sp.tensor(data(2, 3, 4)), start_dim=1).shape == (2, 12)
    with pytest.raises(SpagoError, match="give axis= or dim=, not both"):
        ops.sum(x, axis=0, dim=0)
    assert nn.Softmax(dim=0)(x).numpy().sum(0) == pytest.approx([1, 1, 1])


# ----------------------------------------------------------------------------- tensors

def test_from_numpy_shares_memory():
    a = np.zeros(3, np.float32)
    t = sp.from_numpy(a)
    a[0] = 7.0
    assert t.tolist() == [7.0, 0.0, 0.0]
    with pytest.raises(SpagoError, match="NumPy array"):
        sp.from_numpy([1.0])
    with pytest.raises(SpagoError, match="no float16"):
        sp.from_numpy(np.zeros(2, np.float16))


def test_clone_float_double():
    x = sp.tensor(data(2, 2), requires_grad=True)
    y = x.clone()
    assert y._value is not x._value and np.array_equal(y.numpy(), x.numpy())
    (y * 3.0).sum().backward()
    assert np.array_equal(x.grad.numpy(), np.full((2, 2), 3.0, np.float32))
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    assert sp.clone(x).grad_fn == "<cast>"
    fn = sp.jit(lambda a: a.clone() * 2.0)
    a = data(3)
    assert np.array_equal(fn(a), a * 2.0)


# ----------------------------------------------------------------------------- modules

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = nn.ReLU()
        self.register_buffer("count", np.zeros(1, np.float32))

    def forward(self, x):
        return self.act(self.fc(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = Block(), Block()
        self.scale = nn.Parameter(np.ones(3, np.float32))

    def forward(self, x):
        return self.b(self.a(x)) * self.scale


def test_parameter_alias_and_module_traversal():
    assert nn.Parameter is nn.Param
    net = Net()
    assert [name for name, _ in net.named_children()] == ["a", "b"]
    assert list(net.children()) == [net.a, net.b]
    assert [n for n, _ in net.named_modules()] == ["", "a", "a.fc", "a.act", "b", "b.fc", "b.act"]
    assert list(net.modules())[0] is net and len(list(net.modules())) == 7
    visited = []
    net.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "ReLU", "Block", "Linear", "ReLU", "Block", "Net"]  # children first, as PyTorch
    net.apply(lambda m: m.fc.weight.assign(np.eye(3)) if isinstance(m, Block) else None)
    assert np.array_equal(net.b.fc.weight.numpy(), np.eye(3, dtype=np.float32))


def test_requires_grad_freezes():
    net = Net()
    net.a.requires_grad_(False)
    net(sp.tensor(data(2, 3))).sum().backward()
    assert net.a.fc.weight.grad is None and net.b.fc.weight.grad is not None


def test_buffers_are_saved_but_not_trained(tmp_path):
    net = Net()
    assert "a.count" in net.state_dict() and "a.count" not in dict(net.named_parameters())
    assert [n for n, _ in net.named_buffers()] == ["a.count", "b.count"] and net.a.count.name == "a.count"
    net.a.count = net.a.count + 1.0  # reassigning keeps it a buffer
    assert isinstance(net.a._buffers["count"], sp.Tensor) and net.a.count.tolist() == [1.0]
    opt = optim.SGD(net, lr=0.1)
    assert all(p is not net.a.count for p in opt.params)
    sp.save(net, tmp_path / "net.safetensors")
    other = sp.load(Net(), tmp_path / "net.safetensors")
    assert other.a.count.tolist() == [1.0] and other.b.count.tolist() == [0.0]
    assert net.double().a.count.dtype == np.float64
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", np.zeros(1, np.float32))

        def forward(self, x):
            self.calls = self.calls + 1.0
            return x * 2.0

    counting = Counting()
    counting(np.ones(2, np.float32))
    with pytest.raises(SpagoError, match="calls: a buffer cannot be assigned while the module is traced"):
        sp.trace(counting, np.ones(2, np.float32))
    assert counting.calls.tolist() == [1.0] and "calls" in counting._buffers
    with pytest.raises(SpagoError, match="already a parameter"):
        net.register_buffer("scale", np.zeros(1))
    with pytest.raises(SpagoError, match="is a Param"):
        net.register_buffer("w", nn.Param(np.zeros(1)))


# ----------------------------------------------------------------------------- loss classes

LOSSES = [
    (nn.CrossEntropyLoss, losses.cross_entropy, "classes", {"label_smoothing": 0.1}),
    (nn.NLLLoss, losses.nll, "log_probs", {}),
    (nn.MSELoss, losses.mse, "same", {}),
    (nn.L1Loss, losses.mae, "same", {}),
    (nn.BCEWithLogitsLoss, losses.binary_cross_entropy_with_logits, "binary", {}),
]


@pytest.mark.parametrize("cls, fn, kind, options", LOSSES, ids=[c.__name__ for c, *_ in LOSSES])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_classes_wrap_the_functions(cls, fn, kind, options, reduction):
    x = sp.tensor(data(4, 3))
    target = {"classes": RNG.integers(0, 3, 4), "log_probs": RNG.integers(0, 3, 4), "same": data(4, 3),
              "binary": (RNG.random((4, 3)) > 0.5).astype("float32")}[kind]
    if kind == "log_probs":
        x = ops.log_softmax(x, dim=-1)
    layer = cls(reduction=reduction, **options)
    assert isinstance(layer, nn.Module) and f"reduction='{reduction}'" in repr(layer)
    assert np.array_equal(layer(x, target).numpy(), fn(x, target, reduction=reduction, **options).numpy())


def test_loss_classes_match_torch():
    torch = pytest.importorskip("torch")
    x, y = data(5, 4), RNG.integers(0, 4, 5)
    ours = nn.CrossEntropyLoss(label_smoothing=0.2)(x, y).item()
    theirs = torch.nn.CrossEntropyLoss(label_smoothing=0.2)(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert ours == pytest.approx(theirs, rel=1e-5)
    with pytest.raises(SpagoError, match="unknown option"):
        nn.MSELoss(size_average=True)
    with pytest.raises(SpagoError, match="reduction"):
        nn.L1Loss(reduction="batchmean")


# ----------------------------------------------------------------------------- recurrent layers

@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_recurrent_batch_first_false_takes_time_first(cls):
    batch_first = cls(3, 4, num_layers=2, bidirectional=True, generator=sp.Generator(1))
    time_first = cls(3, 4, num_layers=2, bidirectional=True, generator=sp.Generator(1), batch_first=False)
    assert "batch_first=True" in repr(batch_first) and "batch_first=False" in repr(time_first)
    assert "batch-first" in cls.__doc__.lower().replace("batch_first", "")
    x = data(2, 5, 3)  # (batch, time, features)
    out_b, state_b = batch_first(x, mask=np.ones((2, 5)))
    out_t, state_t = time_first(np.ascontiguousarray(x.transpose(1, 0, 2)), mask=np.ones((2, 5)))
    assert out_t.shape == (5, 2, 8)
    assert np.array_equal(out_t.numpy().transpose(1, 0, 2), out_b.numpy())
    for a, b in zip(state_b if isinstance(state_b, tuple) else (state_b,),
                    state_t if isinstance(state_t, tuple) else (state_t,)):
        assert np.array_equal(a.numpy(), b.numpy())


def test_time_first_gru_matches_torch_default_layout():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.GRU(3, 4)  # PyTorch's default: time-first
    ours = nn.GRU(3, 4, batch_first=False)
    cell = ours.stack.layers[0].cell
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).assign(getattr(theirs, f"{name}_l0").detach().numpy())
    x = data(6, 2, 3)
    with torch.no_grad():
        want, h_n = theirs(torch.from_numpy(x))
    out, h = ours(x)
    np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.numpy(), h_n.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(SpagoError, match="time-first"):
        ours(data(6, 3))


def test_recurrent_layer_docstrings_state_the_layout():
    for cls in (nn.Recurrent, nn.Bidirectional, nn.StackedRNN, nn.RNN, nn.LSTM, nn.GRU):
        assert "batch-first" in cls.__doc__.lower() or "batch_first" in cls.__doc__, cls
        assert "mask" in cls.forward.__doc__ and "(B, T" in cls.forward.__doc__, cls


# ----------------------------------------------------------------------------- Hugging Face habits

def test_model_output_is_a_dict_with_attributes_and_indexing():
    from spago.nlp.transformers import ModelOutput

    out = ModelOutput(logits=np.ones(2), hidden=np.zeros(3))
    assert isinstance(out, dict) and out.logits is out["logits"] and out[0] is out["logits"]
    assert out[1] is out.hidden and out[:2] == (out.logits, out.hidden) and out.to_tuple()[1] is out.hidden
    with pytest.raises(AttributeError, match="has logits, hidden"):
        out.pooler_output
    assert "logits=(2,)" in repr(out)


def fixture(name):
    folder = os.path.join(FIXTURES, "tiny-bert", name)
    if not os.path.isdir(folder):
        pytest.skip(f"fixture model {folder} not found")
    return folder


def test_transformer_outputs_are_model_outputs():
    from spago.nlp.transformers import ModelOutput, from_pretrained

    model = from_pretrained(fixture("sequence-classification"), compiled=False)
    enc = model.tokenize(["a cat", "the dog sat"])
    out = model(**enc)
    assert isinstance(out, ModelOutput) and out[0] is out.logits and out.logits.shape[0] == 2
    eager = model.module(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    assert isinstance(eager, ModelOutput) and list(eager)[0] == "logits"
    compiled = sp.compile(lambda ids, mask: model.module(ids, mask), enc["input_ids"], enc["attention_mask"])
    got = compiled(enc["input_ids"], enc["attention_mask"])
    assert isinstance(got, ModelOutput) and np.allclose(got.logits, eager.logits.numpy(), atol=1e-5)


def test_tokenizer_return_tensors():
    from spago.nlp.tokenizers import BertTokenizer, TokenizerError

    tok = BertTokenizer.from_pretrained(fixture("base")) if hasattr(BertTokenizer, "from_pretrained") else \
        BertTokenizer(os.path.join(fixture("base"), "vocab.txt"))
    arrays = tok(["the cat", "hello world again"], return_tensors="np")
    lists = tok(["the cat", "hello world again"], return_tensors=None)
    assert isinstance(arrays["input_ids"], np.ndarray) and arrays["input_ids"].dtype == np.int64
    assert lists["input_ids"] == arrays["input_ids"].tolist() and isinstance(lists["attention_mask"], list)
    with pytest.raises(TokenizerError, match="NumPy"):
        tok("the cat", return_tensors="pt")


def test_pipelines_take_hugging_face_keywords_lists_and_the_factory():
    from spago.nlp import pipeline

    qa = pipeline("question-answering", fixture("qa"), compiled=False)
    assert "QuestionAnswering(task='question answering'" in repr(qa)
    one = qa(question="who lives in paris?", context="john lives in paris.")
    assert one == qa("who lives in paris?", "john lives in paris.")
    many = qa(question=["who lives in paris?", "where does john live?"], context="john lives in paris.")
    assert many == [one, qa("where does john live?", passage="john lives in paris.")]
    with pytest.raises(SpagoError, match="differ in length"):
        qa(question=["a?", "b?"], context=["c", "d", "e"])
    with pytest.raises(SpagoError, match="passage= or context="):
        qa("who?")
    ner = pipeline("ner", qa.model.source.replace("qa", "token-classification"), compiled=False)
    texts = ["john lives in paris", "hello world"]
    assert ner(texts) == [ner(t) for t in texts]
    with pytest.raises(SpagoError, match="unknown task 'translation'"):
        pipeline("translation", fixture("qa"))


def test_encode_takes_sentence_transformers_keywords(capsys):
    from spago.nlp.transformers import from_pretrained

    model = from_pretrained(fixture("base"), compiled=False)
    texts = ["the cat sat", "a dog", "hello world", "john lives in paris"]
    plain = model.encode(texts, batch_size=2)
    unit = model.encode(texts, batch_size=3, normalize_embeddings=True, show_progress_bar=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit, plain / np.linalg.norm(plain, axis=-1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert "encoding" in capsys.readouterr().err
    with pytest.raises(SpagoError, match="batch_size"):
        model.encode(texts, batch_size=0)
