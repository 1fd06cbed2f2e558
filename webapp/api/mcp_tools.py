"""DocChat as tools for agents: an MCP server (the maintained MCP Python SDK, Streamable HTTP) at /mcp.

Tools: ``collections`` (what the caller may read), ``search`` (ranked passages, the JSON of
`search --json`) and ``ask`` (a grounded answer with citations, evidence sentences and the claim
check). The endpoint sits behind the same sign-in gate as everything else, so a client sends a
user's API token (``Authorization: Bearer dct_...``) and every tool acts for that user: the same
collections, limits and admission control as the UI. Stateless JSON responses: nothing is kept per
MCP session, and any replica can answer.

Client configuration (e.g. for an editor or agent):

    {"mcpServers": {"docchat": {"url": "http://localhost:9000/mcp",
                                "headers": {"Authorization": "Bearer dct_..."}}}}
"""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import Context, MCPServer  # module level: the SDK reads the tools' annotations
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from webapp.auth.gate import request_user
from webapp.chat.answering import Question, answer_json
from webapp.chat.followups import conversation
from webapp.errors import UserError

MCP_PATH = "/mcp"


def build_mcp(services):
    """(MCPServer, its Starlette routes); run ``server.session_manager.run()`` in the app's lifespan."""
    chat, answers, documents, auth = services.chat, services.answers, services.documents, services.auth
    docs = documents  # the tools' own `documents` parameter (a scope) shadows the name inside them
    server = MCPServer(
        name="DocChat",
        instructions=(
            "Search the user's document collections and answer questions from them with page citations. "
            "Call `collections` first to see what can be searched."
        ),
    )

    def actor_of(ctx: Context):
        request = ctx.request_context.request
        user = request_user(request) if request is not None else None
        return auth.actor_for(user.name if user else None)

    async def in_thread(fn, *args):
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except UserError as exc:
            raise ToolError(exc.user_message) from exc

    @server.tool(description="The document collections you may search and ask about.")
    async def collections(ctx: Context) -> list[str]:
        actor = actor_of(ctx)
        return await in_thread(lambda: documents.collections(actor) if documents.available() is None else [])

    @server.tool(
        description="Ranked passages from one collection for a query (no language model involved): "
        "document, page, scores and text of each. `documents`: search only these documents of the "
        "collection (file names as listed)."
    )
    async def search(
        collection: str, query: str, k: int = 5, documents: list[str] | None = None, ctx: Context = None
    ) -> list[dict]:
        actor = actor_of(ctx)
        k = max(1, min(int(k), 50))
        scope = list(documents or [])[:100]
        passages = await in_thread(lambda: docs.search(collection, query, k=k, actor=actor, documents=scope or None))
        return [p.as_json(n) for n, p in enumerate(passages, start=1)]

    @server.tool(
        description="Answer a question from one collection. Returns the answer (it opens with the "
        "sources' own sentences, quoted and cited), the cited pages, the evidence sentences of the "
        "documents (best first) and which sentences of the model's part the documents support. "
        "answer_mode: 'quote' (no model), 'brief' or 'free' (default: the server's). For a follow-up, "
        "pass the earlier questions (oldest first) in `previous_questions` so that 'its' or 'that "
        "model' can be resolved, and the answer to the last of them in `previous_answer` (a follow-up "
        "that refers back is then answered from the documents that answer quoted). `documents`: "
        "answer from only these documents of the collection. "
        "`task`: 'summarize', 'compare' (two or more documents), 'outline', 'overview' or 'answer' "
        "(default: read from the question)."
    )
    async def ask(
        collection: str,
        question: str,
        max_tokens: int = 256,
        answer_mode: str | None = None,
        previous_questions: list[str] | None = None,
        previous_answer: str | None = None,
        documents: list[str] | None = None,
        task: str | None = None,
        ctx: Context = None,
    ) -> dict:
        actor = actor_of(ctx)
        history = conversation(previous_questions or [], previous_answer)

        def answer() -> dict:
            done = answers.ask(
                Question(
                    question,
                    history,
                    collection,
                    chat.catalog.default_choice(),
                    answer_mode,
                    chat.params(max_tokens, None),
                    actor=actor,
                    documents=tuple(documents or ())[:100],
                    task=task,
                )
            )
            return answer_json(done)

        return await in_thread(answer)

    # With sign-in on, the gate is the protection; without it (loopback only) the SDK's DNS
    # rebinding guard keeps a web page from reaching the tools through a rebound host name.
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=not auth.enabled,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, transport_security=security
    )
    return server, list(app.routes)
