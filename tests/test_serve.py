"""The Serve app over real HTTP with the official ``openai`` client: the default model, local Ray.

The app is the session's (``serve_app`` in conftest.py, shared with test_serve_hostile.py). Traffic
goes to 127.0.0.1 only; every load loop is bounded in count and time.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from cultura.serve.replicas import replica_actor_names, replica_states, wait_for_replacement

from serve_settings import SERVE_API_KEY as API_KEY, SERVE_TOKENS as TOKENS


@pytest.fixture(scope="module")
def app(serve_app):
    """The running app: (config, base URL of the OpenAI API)."""
    return serve_app


@pytest.fixture(scope="module")
def client(app):
    from openai import OpenAI

    return OpenAI(base_url=app[1], api_key=API_KEY, max_retries=0, timeout=180)


@pytest.fixture(scope="module")
def http(app):
    import httpx

    with httpx.Client(base_url=app[1].removesuffix("/v1"), timeout=180,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as session:
        yield session


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assert_openai_error(response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code", "request_id"} and error["message"] and error["type"]
    assert error["request_id"] and response.headers["x-request-id"] == error["request_id"]
    assert "Traceback" not in error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def _usage_ok(usage) -> None:
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


# ----- the API ----------------------------------------------------------------------------------
def test_models_are_listed(client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "palette" and "base" in ids
    assert {f"continent/{c}" for c in ("Africa", "America", "Asia", "Europe", "Oceania")} <= set(ids)
    assert {"culture/german", "culture/chinese", "culture/arabic"} <= set(ids)


def test_palette_completion(client):
    response = client.chat.completions.create(
        model="palette", messages=_user("How should I greet my host at a family dinner?"),
        max_tokens=TOKENS, extra_body={"country": "Japan"})
    assert response.model == "palette" and response.object == "chat.completion"
    assert response.choices[0].message.content.strip()
    assert response.choices[0].finish_reason in ("stop", "length")
    _usage_ok(response.usage)  # drafts and Meta Agent together: more prompt tokens than one call
    assert response.usage.prompt_tokens > 150


def test_palette_streams_openai_chunks(client):
    stream = client.chat.completions.create(
        model="palette", messages=_user("What is a polite gift for a new neighbour?"), max_tokens=TOKENS,
        stream=True, stream_options={"include_usage": True}, extra_body={"country": "Brazil"})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    _usage_ok(chunks[-1].usage)
    assert len({c.id for c in chunks}) == 1


def test_culture_and_continent_models(client):
    response = client.chat.completions.create(
        model="culture/german", messages=[{"role": "system", "content": "Answer briefly."},
                                          *_user("What do you eat for breakfast?")], max_tokens=TOKENS)
    assert response.model == "culture/german" and response.choices[0].message.content.strip()
    _usage_ok(response.usage)
    stream = client.chat.completions.create(model="continent/asia", messages=_user("How do people greet?"),
                                            max_tokens=TOKENS, stream=True)
    chunks = list(stream)
    assert chunks[0].model == "continent/Asia"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()


def test_culture_agents_answer_in_the_language_asked(client):
    from cultura.language import detect_language

    asked = {"en": ("How should neighbours treat each other?", "auto"), "ja": ("近所の人はお互いにどう接するべきですか？", "ja")}
    answers = {code: client.chat.completions.create(
        model="culture/portuguese", messages=_user(question), max_tokens=TOKENS,
        extra_body={"language": language}).choices[0].message.content for code, (question, language) in asked.items()}
    assert {code: detect_language(text) for code, text in answers.items()} == {"en": "en", "ja": "ja"}, answers


def test_palette_endpoint_reports_gate_drafts_and_timings(http):
    sent = time.perf_counter()
    response = http.post("/v1/palette", json={"prompt": "What should I bring to a wedding in Nigeria?",
                                              "max_tokens": TOKENS})
    wall = time.perf_counter() - sent
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["country"] == "Nigeria" and body["answer"].strip()  # detected in the prompt
    assert abs(sum(body["weights"].values()) - 1) < 1e-6 and body["selected"][0] == "Africa"
    assert set(body["drafts"]) == set(body["selected"]) and body["missing"] == {}
    assert body["without_adapter"] == list(body["drafts"]), "the test app serves no continent adapter"
    assert {"gate_s", "drafts_s", "aggregate_s", "total_s"} <= set(body["timings"])
    assert body["timings"]["total_s"] >= body["timings"]["drafts_s"]
    timing = dict(part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
    first_token_s, per_token_s = float(timing["ttft"]) / 1000, float(timing["tpot"]) / 1000
    # the blend's first token comes after the gate and the drafts, and before the client has the answer;
    # it counts from the request's arrival, so it also holds the token check before the palette starts
    assert body["timings"]["gate_s"] + body["timings"]["drafts_s"] <= first_token_s, (timing, body["timings"])
    assert first_token_s + per_token_s <= wall, (timing, wall)  # a later token came before the response
    assert 0 < per_token_s < body["timings"]["aggregate_s"]
    header = http.post("/v1/palette", json={"prompt": "How do families celebrate a birthday?", "max_tokens": TOKENS},
                       headers={"X-Cultura-Country": "south korean"})
    assert header.status_code == 200 and header.json()["country"] == "South Korea"


# ----- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("body, status, param", [
    ({"model": "palette", "messages": []}, 400, "messages"),
    ({"model": "palette", "messages": [{"role": "tool", "content": "hi"}]}, 400, "messages.0.role"),
    ({"model": "palette", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
    ({"model": "palette", "messages": [{"role": "user", "content": "   "}]}, 400, "messages"),
    ({"model": "palette"}, 400, "messages"),
    ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
    ({"model": "culture/../../etc", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
    ({"model": "continent/Atlantis", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
    ({"model": "base", "messages": [{"role": "user", "content": "x" * 4001}]}, 413, "messages"),
    ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 257}, 400, "max_tokens"),
    ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
    ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "repetition_penalty": 0}, 400,
     "repetition_penalty"),
    ({"model": "palette", "messages": [{"role": "user", "content": "hi"}], "country": "Atlantis"}, 400, "country"),
    ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "language": "Klingonese"}, 400, "language"),
    ({"model": "base", "messages": [{"role": "user", "content": "hi"}], "no_repeat_ngram_size": -1}, 400,
     "no_repeat_ngram_size"),
])
def test_bad_requests_get_openai_errors(http, body, status, param):
    _assert_openai_error(http.post("/v1/chat/completions", json=body), status, param)


def test_malformed_bodies_and_routes(http):
    _assert_openai_error(http.post("/v1/chat/completions", content=b"{not json",
                                   headers={"Content-Type": "application/json"}), 400)
    _assert_openai_error(http.post("/v1/chat/completions", json=["a list"]), 400)
    _assert_openai_error(http.post("/v1/palette", json={"prompt": "hi", "messages": _user("hi")}), 400)
    _assert_openai_error(http.get("/v1/nothing-here"), 404)
    _assert_openai_error(http.post("/v1/chat/completions", content=b"x" * 200_000,
                                   headers={"Content-Type": "application/json"}), 413)


def test_openai_client_raises_typed_errors(client):
    import openai

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=_user("hi"), max_tokens=TOKENS)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="base", messages=_user("hi"), max_tokens=100_000)


def test_api_key_is_enforced(app, http):
    import httpx
    import openai

    base = app[1].removesuffix("/v1")
    _assert_openai_error(httpx.get(f"{base}/v1/models"), 401)
    _assert_openai_error(httpx.post(f"{base}/v1/chat/completions", json={"model": "base", "messages": _user("hi")},
                                    headers={"Authorization": "Bearer wrong"}), 401)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=app[1], api_key="wrong", max_retries=0).models.list()
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"  # health needs no key


# ----- resilience and scaling -------------------------------------------------------------------
def _wait(predicate, timeout: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_palette_survives_a_killed_continent_replica(app, http):
    import ray

    from cultura.data.hofstede import CONTINENTS
    from cultura.serve.app import continent_deployment

    config, _ = app
    names = {c: replica_actor_names(config.serve.app_name, continent_deployment(c)) for c in CONTINENTS}
    assert all(len(n) == 1 for n in names.values()), names
    replicas = {c: ray.get_actor(n[0], namespace="serve") for c, n in names.items()}

    def drafting() -> str | None:
        busy = [c for c, r in replicas.items() if ray.get(r.get_num_ongoing_requests.remote()) > 0]
        return busy[0] if busy else None

    prompt = {"prompt": "Describe in detail how a traditional wedding is celebrated.", "country": "Germany",
              "max_tokens": 24}
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/v1/palette", json=prompt)
        # kill a continent replica while its draft is in flight: the Meta Agent must blend the other drafts
        deadline, victim = time.monotonic() + 60, None
        while victim is None and time.monotonic() < deadline:
            victim = drafting() or time.sleep(0.02)
        assert victim is not None, "no continent agent was ever busy"
        ray.kill(replicas[victim], no_restart=True)
        response = pending.result(timeout=180)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["missing"]) == [victim] and "failed" in body["missing"][victim]
    assert set(body["drafts"]) == set(body["selected"]) - {victim} and body["answer"].strip()
    # Serve replaces the replica; afterwards every draft comes back again
    deployment = continent_deployment(victim)
    assert wait_for_replacement(config.serve.app_name, deployment, names[victim][0], timeout=90) is not None
    after = http.post("/v1/palette", json=dict(prompt, max_tokens=TOKENS))
    assert after.status_code == 200 and after.json()["missing"] == {}


def test_culture_agents_scale_up_under_load_and_back_down(app, client):
    config, _ = app
    app_name, deployment = config.serve.app_name, "CultureAgent"
    assert replica_states(app_name, deployment) == {"RUNNING": 1}
    stop = threading.Event()
    sent = []

    def load() -> None:  # bounded: at most 15 requests per worker, stops when scaled or after the deadline
        for _ in range(15):
            if stop.is_set():
                return
            r = client.chat.completions.create(model="culture/korean", messages=_user("What is a good dinner?"),
                                               max_tokens=TOKENS)
            sent.append(r.choices[0].message.content)

    with ThreadPoolExecutor(6) as pool:
        workers = [pool.submit(load) for _ in range(6)]
        scaled = _wait(lambda: replica_states(app_name, deployment).get("RUNNING", 0) >= 2, 90, 0.5)
        stop.set()
        for w in workers:
            w.result(timeout=180)
    assert scaled, f"no second replica after {len(sent)} requests: {replica_states(app_name, deployment)}"
    assert _wait(lambda: replica_states(app_name, deployment) == {"RUNNING": 1}, 90, 0.5), replica_states(app_name, deployment)


def test_custom_metrics_reach_prometheus_export(app, http):
    import httpx
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    wanted = ("ray_cultura_serve_gate_weight", "ray_cultura_serve_stage_seconds", "ray_cultura_serve_drafts_skipped",
              "ray_cultura_engine_time_to_first_token_seconds", "ray_cultura_engine_time_per_output_token_seconds")
    # answers timed at the ingress, tagged by the model asked: the palette (all continents) and a continent agent
    tagged = {"ray_cultura_serve_time_to_first_token_seconds_count": ('model="palette"', 'continent="all"'),
              "ray_cultura_serve_time_per_output_token_seconds_count": ('model="continent"', 'continent="Asia"')}

    def exported() -> bool:
        lines = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines()
        return all(any(name in line for line in lines) for name in wanted) and all(
            any(line.startswith(name + "{") and all(tag in line for tag in tags) for line in lines)
            for name, tags in tagged.items())

    assert _wait(exported, 60, 2), "custom metrics missing from Ray's Prometheus export"


# ----- deployment files -------------------------------------------------------------------------
def test_serve_config_file_is_valid_for_serve_deploy(tmp_path):
    from ray.serve.schema import ServeDeploySchema

    from cultura.config import load_config
    from cultura.serve.app import BUILDER_ARGS, IMPORT_PATH, app_builder, write_serve_config

    config = load_config(None, {"serve.api_key": "do-not-write-me", "serve.port": 8123})
    path = write_serve_config(config, tmp_path / "serve_config.yaml")
    text = path.read_text()
    assert "do-not-write-me" not in text
    schema = ServeDeploySchema.model_validate(yaml.safe_load(text))
    [application] = schema.applications
    assert application.import_path == IMPORT_PATH and schema.http_options.host == "127.0.0.1"
    assert type(app_builder(application.args)).__name__ == "Application"  # builds the graph, starts nothing
    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "deploy/k8s/rayservice-serve.yaml").read_text())
    [service_app] = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]
    assert service_app["import_path"] == IMPORT_PATH and set(service_app["args"]) <= set(BUILDER_ARGS)


def test_bad_serve_configuration_is_a_clear_error(tmp_path):
    from cultura.config import load_config
    from cultura.errors import ConfigError
    from cultura.serve.app import app_builder, build_app

    with pytest.raises(ConfigError, match="weighted-merge"):
        build_app(load_config(None, {"palette.blend": "weighted-merge"}))
    with pytest.raises(ConfigError, match="max_replicas"):
        load_config(None, {"serve.gate.autoscaling": {"min_replicas": 3, "max_replicas": 2}})
    with pytest.raises(ConfigError, match="unknown keys"):
        app_builder({"config_file": "x.yaml"})


# ----- the schema, without Ray --------------------------------------------------------------------
def test_conversation_validation_and_framing():
    from cultura.serve.openai_api import ApiError, ChatMessage, conversation

    messages = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hi"),
                ChatMessage(role="assistant", content="Hello!"),
                ChatMessage(role="user", content=[{"type": "text", "text": "Any tips"}, {"type": "text", "text": "?"}])]
    conv = conversation(messages, max_chars=100)
    assert conv.system == "Be brief." and conv.prompt == "Any tips\n?" and len(conv.history) == 2
    framed = conv.frame([{"role": "system", "content": "Persona."}, {"role": "user", "content": conv.prompt}])
    assert framed[0] == {"role": "system", "content": "Persona.\n\nBe brief."}
    assert [m["role"] for m in framed] == ["system", "user", "assistant", "user"]
    with pytest.raises(ApiError) as too_long:
        conversation(messages, max_chars=10)
    assert too_long.value.status == 413
    with pytest.raises(ApiError, match="last message"):
        conversation(messages[:3], max_chars=100)
    with pytest.raises(ApiError, match="not supported"):
        conversation([ChatMessage(role="user", content=[{"type": "image_url"}])], max_chars=100)


def test_stream_chunks_follow_the_openai_format():
    import json

    from cultura.serve.openai_api import SSE_DONE, ChunkWriter, Usage

    writer = ChunkWriter("palette")
    events = [writer.role(), *writer.content("Hello there, friend.", "stop", Usage.of(5, 3))]
    assert events[-1] == SSE_DONE and all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == "Hello there, friend."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 8


def test_cli_writes_the_serve_config_and_refuses_a_detached_local_app(tmp_path):
    import subprocess
    import sys

    cultura = str(Path(sys.executable).with_name("cultura"))
    out = tmp_path / "serve_config.yaml"
    done = subprocess.run([cultura, "serve", "--write-config", str(out), "--port", "9001", "--host", "127.0.0.1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load(out.read_text())
    assert written["http_options"]["port"] == 9001
    assert written["applications"][0]["args"]["config"]["serve"]["port"] == 9001
    refused = subprocess.run([cultura, "serve", "--no-blocking"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--address" in refused.stderr and "Traceback" not in refused.stderr
