"""Answering questions: the engine, one episode, models, prompts, tasks, tools, forks, preflight."""
