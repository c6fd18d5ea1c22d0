"""The Kosmos assistant: answers from Kosmos's docs and the caller's live projects.

``POST /api/v1/projects/{project}/assistant``, ``kosmos ask``, ``kosmos.assistant.ask``
and the web UI's Assistant page all land in :func:`kosmos.genai.assistant.service.ask`.
"""
