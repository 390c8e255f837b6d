"""Merge records over HTTP: read one, and undo it (``unmerge``)."""

from __future__ import annotations

from flask.views import MethodView

from service.api.profiles import MergeRecordSchema, actor
from service.extensions import Blueprint
from service.state import state

blp = Blueprint(
    "merges",
    __name__,
    url_prefix="/v1/merges",
    description="Merge records: who merged which profiles when, and what moved; undo a merge.",
)


@blp.route("/<string:merge_id>")
class MergeItem(MethodView):
    @blp.audit("read")
    @blp.auth("profiles:read")
    @blp.response(200, MergeRecordSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, merge_id):
        """One merge record."""
        return state().profiles.merges.get(merge_id)


@blp.route("/<string:merge_id>/unmerge")
class MergeUndo(MethodView):
    @blp.audit("unmerge")
    @blp.auth("profiles:write")
    @blp.response(200, MergeRecordSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, merge_id):
        """Undo a merge: the source comes back as it was; writes made since stay with the
        target, except the source's identities (see `profiles/merge.py` for the rule)."""
        return state().profiles.merges.unmerge(merge_id, actor=actor())
