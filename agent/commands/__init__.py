"""The process layer's commands besides `run`: demo, demo view, bench bring-up, pics, the log query."""
