"""The semantic cache's learned verifier: does a cached question ask what the new one asks?

A small classifier over pair features (``features``), trained on perturbation-generated pairs
(``pairs``) through Kosmos itself (``train``: a versioned dataset, a tracked run, a registered
model with an alias), and loaded by the gateway from the registry (``model``).
"""

from kosmos.genai.verifier.model import Verifier, VerifierMissing

__all__ = ["Verifier", "VerifierMissing"]
