"""Built-in prompt profiles. Every run gets a different prompt.

openvino-genai (and llama.cpp's server) cache the KV of a prompt prefix they
have seen; a benchmark that repeats its prompt measures that cache, not
prefill. So each run starts with its own request number and rotates the
passage order, which changes the prompt from its first tokens on.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "quantize" / "data"

CHAT_QUESTIONS = [
    "What is the capital of France?",
    "Give me three tips for writing clear emails.",
    "Explain in two sentences what a CPU cache is.",
    "Name three primary colours and one fact about each.",
    "How do I boil an egg so that the yolk stays soft?",
    "What is the difference between a list and a tuple in Python?",
    "Suggest a name for a cat that likes to sleep in boxes.",
    "Why is the sky blue? Answer briefly.",
    "Write a haiku about autumn rain.",
    "What are the benefits of regular exercise?",
]


def _passages() -> list[str]:
    text = ""
    for name in ("quality_eval.txt", "tokenizer_check.txt"):
        path = DATA / name
        if path.is_file():
            text += path.read_text(encoding="utf-8") + "\n\n"
    return [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]


def rag_prompt(i: int, target_chars: int = 4500) -> str:
    """About 1.5k tokens of document text with a question, different for every i."""
    passages = _passages()
    k = i % len(passages)
    ordered = passages[k:] + passages[:k]
    body, n = [], 0
    while sum(len(p) for p in body) < target_chars:
        body.append(f"[{len(body) + 1}] " + ordered[n % len(ordered)])
        n += 1
    return (
        f"Request {i * 7919 % 100003}. Sources:\n\n"
        + "\n\n".join(body)
        + "\n\nQuestion: according to the sources, why does compressing weights make a model faster? "
        "Answer in three sentences and cite the sources."
    )


def chat_prompt(i: int) -> str:
    return f"(request {i * 7919 % 100003}) " + CHAT_QUESTIONS[i % len(CHAT_QUESTIONS)]


PROFILES = {
    "chat": ("short chat question (~30 tokens)", chat_prompt),
    "rag": ("RAG prompt (~1.5k tokens of sources + a question)", rag_prompt),
}


def prompt_for(profile: str, i: int) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown prompt profile {profile!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[profile][1](i)
