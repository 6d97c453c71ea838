"""sladesk: a support desk backend with exact, explainable SLA clocks."""

__version__ = "0.1.0"
