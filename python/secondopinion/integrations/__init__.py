"""Adapters for RAG frameworks, each an optional extra.

- ``secondopinion.integrations.langchain`` (``pip install 'secondopinion[langchain]'``):
  ``SecondOpinionRetriever`` and ``SecondOpinionCompressor``.
- ``secondopinion.integrations.llamaindex`` (``pip install 'secondopinion[llamaindex]'``):
  ``SecondOpinionRetriever`` and ``SecondOpinionPostprocessor``.
- ``secondopinion.integrations.haystack`` (``pip install 'secondopinion[haystack]'``):
  the components ``SecondOpinionRetriever`` and ``SecondOpinionRanker``.

Each module imports its framework and nothing else does, so ``import
secondopinion`` never needs one. The adapters only translate: retrieval,
reranking and gating are :class:`~secondopinion.Pipeline`,
:class:`~secondopinion.CrossEncoder` and :class:`~secondopinion.Gate`.

A refusal never becomes an empty result. The retrievers, compressor and
postprocessor return one *refusal marker* (a document or node whose metadata
``"secondopinion"`` entry has ``"status": "refusal"``) that ``is_refusal``
recognises; the Haystack components send the
:class:`~secondopinion.Refusal` on a ``refusal`` output socket instead of
sending ``documents``.
"""
