"""The JSON bodies of the server's endpoints, as the Go spaGO's servers spell them (camelCase options, `took` in
milliseconds on every answer). Pydantic checks each request, so a bad one gets a 422 naming the field; the
response models document the answers in the OpenAPI schema at /docs."""
from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


def _integral(value: Any) -> Any:
    """3.0 is the integer 3 (as JSON Schema says); anything else is left to the strict int check."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]  # an integer field: strict, but 3.0 counts

POOLING_PATTERN = r"^(cls|max|mean|mean_sqrt_len)(\+(cls|max|mean|mean_sqrt_len))*$"


class Body(BaseModel):
    """A request body: unknown fields are errors (a misspelt option is reported, not ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# -- requests -------------------------------------------------------------------------------------------------

class AnalyzeOptions(Body):
    mergeEntities: bool = Field(False, description="merge B-/I-/E-/S- tags into entity spans")
    filterNotEntities: bool = Field(False, description="drop the tokens outside any entity (label O)")


class AnalyzeRequest(Body):
    text: str
    options: AnalyzeOptions = Field(default_factory=AnalyzeOptions)


class AnswerOptions(Body):
    maxAnswers: Int = Field(3, ge=1, le=100, description="at most this many answers, best first")
    maxAnswerLength: Int = Field(20, ge=1, le=512, description="the longest answer, in tokens")
    minConfidence: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False,
                                 description="drop answers less probable than this")


class AnswerRequest(Body):
    question: str
    passage: str
    options: AnswerOptions = Field(default_factory=AnswerOptions)


class PredictOptions(Body):
    topK: Int = Field(5, ge=1, le=100, description="candidates per [MASK]")


class PredictRequest(Body):
    text: str = Field(description="a text with one or more [MASK] tokens")
    options: PredictOptions = Field(default_factory=PredictOptions)


class TextRequest(Body):
    text: str


class ClassifyRequest(Body):
    text: str
    textPair: Optional[str] = Field(None, description="a second text (entailment and other pair tasks)")


class EncodeRequest(Body):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"oneOf": [{"required": ["text"]},
                                                                           {"required": ["texts"]}]})
    text: str = Field(None, description="one text (give `text` or `texts`)")
    texts: list[str] = Field(None, min_length=1, max_length=256, description="several texts")
    pooling: Optional[str] = Field(None, pattern=POOLING_PATTERN,
                                   description="cls, mean, max, mean_sqrt_len or a combination such as mean+max; "
                                               "default: the model's own (a sentence-transformers folder) or mean")

    @model_validator(mode="after")
    def one_of_text_or_texts(self) -> "EncodeRequest":
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of the fields `text` and `texts`")
        return self


class SimilarityRequest(Body):
    texts: list[str] = Field(min_length=2, max_length=256, description="texts to compare pairwise")
    pooling: Optional[str] = Field(None, pattern=POOLING_PATTERN)


class SearchOptions(Body):
    topK: Int = Field(5, ge=1, le=1000)


class SearchRequest(Body):
    query: str
    options: SearchOptions = Field(default_factory=SearchOptions)


# -- responses ------------------------------------------------------------------------------------------------

class Took(BaseModel):
    took: float = Field(description="milliseconds the server spent on the request")


class Token(BaseModel):
    text: str
    start: int = Field(description="character offset (Python str index) into the text")
    end: int
    label: str
    confidence: Optional[float] = None
    score: Optional[float] = None


class TokensResponse(Took):
    tokens: list[Token]


class Candidate(BaseModel):
    token: str
    id: int
    confidence: float


class PredictedToken(Token):
    candidates: list[Candidate]


class PredictResponse(Took):
    tokens: list[PredictedToken]


class Answer(BaseModel):
    text: str
    start: int
    end: int
    confidence: float


class AnswerResponse(Took):
    answers: list[Answer]


class ClassConfidence(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str = Field(alias="class")
    confidence: float


class ClassifyResponse(Took):
    model_config = ConfigDict(populate_by_name=True)
    class_: str = Field(alias="class")
    confidence: float
    distribution: list[ClassConfidence]


class EncodeResponse(Took):
    data: Union[list[float], list[list[float]]] = Field(
        description="the L2-normalised embedding of `text`, or one per text of `texts`")


class SimilarityResponse(Took):
    similarity: list[list[float]] = Field(description="cosine similarity of every pair of texts")


class SearchResult(BaseModel):
    index: int
    text: str
    score: float


class SearchResponse(Took):
    query: str
    results: list[SearchResult]


class HealthResponse(BaseModel):
    status: str
    kind: str
    model: str
    architecture: str
    endpoints: list[str]


class ErrorResponse(BaseModel):
    error: str = Field(description="what was wrong, naming the field")
    field: Optional[str] = None
