"""Deriving and judging cells beyond the alpha-argmax rule: perturbation-based selection (pt) and zero-cost
proxies (proxies). docs/derivation.md describes both, with their sources."""
