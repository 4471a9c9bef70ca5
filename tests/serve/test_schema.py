"""Schemathesis against the OpenAPI schema of each kind of server: generated requests (valid and invalid) get
no server error, and every answer matches the schema (status codes, content types, bodies). Bounded: a few
examples per operation in the default run (SPAGO_SCHEMATHESIS_EXAMPLES raises it)."""
from __future__ import annotations

import collections
import os

import pytest

from .conftest import app_for

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, settings  # noqa: E402

MODELS = {"qa": ("bert", "tiny-bert/qa", {}), "ner": ("ner", "tiny-bert/token-classification", {}),
          "mlm": ("bert", "tiny-bert/mlm", {}), "electra": ("bert", "tiny-electra/discriminator", {}),
          "classifier": ("bert", "tiny-bert/sequence-classification", {}),
          "flair": ("ner", "flair/tagger.pt", {"compiled": False}),
          "encoder": ("bert", "tiny-bert/base", {"corpus": ["the cat sat on the mat.", "john lives in paris.",
                                                            "hello world"]})}
EXAMPLES = int(os.environ.get("SPAGO_SCHEMATHESIS_EXAMPLES", "10"))
# A schema-valid request may still be one the model cannot take (more tokens than its positions): that is the
# documented 400, so it counts as an acceptable answer to valid data; everything else is checked as usual.
CONFIG = {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400"]}}}


@pytest.fixture(params=sorted(MODELS))
def api_schema(request):
    kind, name, options = MODELS[request.param]
    config = schemathesis.config.SchemathesisConfig.from_dict(CONFIG)
    return schemathesis.openapi.from_asgi("/openapi.json", app_for(kind, name, **options), config=config)


schema = schemathesis.pytest.from_fixture("api_schema")
CASES: collections.Counter = collections.Counter()  # generated requests per operation (shown with -s)


@pytest.fixture(scope="module", autouse=True)
def count_cases():
    yield
    print(f"\nschemathesis: {sum(CASES.values())} requests over {len(CASES)} operations: {dict(CASES)}")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api(case):
    CASES[f"{case.method} {case.path}"] += 1
    case.call_and_validate()
