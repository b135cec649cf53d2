"""The OmniTrace Explorer's Gradio app: one builder per panel, plain handlers, a pure explorer view.

``components.blocks.build_app(tracer, settings)`` assembles it; ``app.py`` launches it.
"""
