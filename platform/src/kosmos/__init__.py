"""Kosmos: an end-to-end ML and GenAI platform.

The platform package owns this namespace package; the other Kosmos packages
(features, training, deployment, genai, ui) join it through ``__path__``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
