"""Every picture the package draws, in one place: contact sheets, query mosaics, catalog and
framing sheets, explanation maps and training curves. Drawing sits below the features that
use it (search, explain, train) and above what it draws from (catalog, framing)."""

from __future__ import annotations

from .sheet import contact_sheet

__all__ = ["contact_sheet"]
