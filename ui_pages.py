"""The app's pages, in the sidebar's order after Home: script, title (also the page's address: `/Browse`),
Material icon and what it is for. Read by app.py (the navigation and Home's list) and by serve.py (which
addresses are pages); it imports nothing, so the server reads it without loading the app."""

from __future__ import annotations

PAGES = [
    ("pages/1_Browse.py", "Browse", ":material/search:", "filter and read trajectories"),
    ("pages/2_Trajectory.py", "Trajectory", ":material/timeline:", "one trajectory step by step: edit, annotate"),
    ("pages/3_Review.py", "Review", ":material/fact_check:", "the next unreviewed trajectory: accept, reject or skip"),
    ("pages/4_Compare.py", "Compare", ":material/compare_arrows:", "two runs over the same questions"),
    ("pages/5_Generate.py", "Generate", ":material/play_arrow:", "run a model on a task to make trajectories"),
    ("pages/6_Mix.py", "Mix", ":material/tune:", "mix tasks and methods into a fine-tuning set"),
    ("pages/7_Train.py", "Train", ":material/model_training:", "fine-tune locally or through OpenAI"),
    ("pages/8_Dashboard.py", "Dashboard", ":material/dashboard:", "scores by run, model and method; cost and steps"),
]
ADDRESSES = tuple(label for _, label, _, _ in PAGES)
