"""The demo domain: card fraud detection."""

from kosmos.features.demo.fraud_data import FraudData, generate, write

__all__ = ["FraudData", "generate", "write"]
