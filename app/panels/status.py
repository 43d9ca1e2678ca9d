"""The status strip: state, epoch and step, a progress bar with the ETA (while running), steps/s, device."""

from __future__ import annotations

import streamlit as st

from app.figures import labels
from engine.runs.snapshot import Snapshot

__all__ = ["render"]


def render(snap: Snapshot, shown_state: str | None = None) -> None:
    """`shown_state` replaces the snapshot's state in the State box (the live panel's "pausing")."""
    cols = st.columns([1.2, 1, 1, 1, 1])
    cols[0].metric("State", shown_state or snap.state)
    shown_epoch = min(snap.epoch + 1, snap.epochs) if snap.epochs else snap.epoch + 1
    cols[1].metric("Epoch", f"{shown_epoch}/{snap.epochs or '?'}")
    cols[2].metric("Step", f"{snap.step}/{snap.total_steps or '?'}")
    cols[3].metric("Steps/s", "—" if snap.steps_per_s is None else f"{snap.steps_per_s:.2f}")
    cols[4].metric("Device", snap.device or "—")
    # an ETA only while steps are being taken: paused (or pausing: it stops after this step) it would be a guess
    eta = f" · ETA {labels.format_duration(snap.eta_s)}" if (shown_state or snap.state) == "running" else ""
    st.progress(snap.progress, text=f"{snap.progress:.0%} · "
                f"{labels.progress_text(snap.epoch, snap.epochs, snap.step, snap.total_steps)}{eta}")
