"""Write the demo data set from the Python data below (the written files are committed beside this script).

    .venv/bin/python datasets/make_demo.py            # rewrite the files in datasets/
    .venv/bin/python datasets/make_demo.py --out DIR  # write them somewhere else

Everything here was written for FireAct Studio: the questions, the answers and the trajectories. Scores in the
run files (reward, em, f1) come from fireact_core.generation.tasks, so they agree with what the app computes. Some
trajectories carry problems on purpose, so that every data check has something to show (see README.md here).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fireact_core.generation.tasks import get_task
from fireact_core.generation.tasks.scoring import normalize_answer

HERE = Path(__file__).resolve().parent
ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
REACT_SYSTEM = (
    "Solve a question answering task with interleaving Thought, Action, Observation steps. Thought can reason "
    "about the current situation, and Action can be two types:\n(1) search[question], which searches a question "
    "on Google and returns a short snippet containing the answer.\n(2) finish[answer], which returns the answer "
    "and finishes the task."
)
INVALID = "Invalid action. Valid actions are search[<question>] and finish[<answer>]."
EIFFEL = ("The Eiffel Tower was built as the entrance arch to the 1889 Exposition Universelle (World's Fair). It "
          "was designed and built by the company of civil engineer Gustave Eiffel.")
# A page that echoed this observation as HTML or markdown would run the script and load the image.
EIFFEL_UNSAFE = EIFFEL + " <script>alert(1)</script> ![Eiffel Tower at night](https://example.invalid/eiffel.png)"
MENDELEEV = "Dmitri Ivanovich Mendeleev (1834-1907) was a Russian chemist who formulated the periodic law."

HOTPOTQA_DEV = [
    ("In which city was the composer of the opera The Magic Flute born?", "Salzburg", "bridge"),
    ("Which ocean lies along the coast of the country whose capital is Lima?", "Pacific Ocean", "bridge"),
    ("Whose engineering company designed and built the tower that served as the entrance arch to the 1889 "
     "World's Fair in Paris?", "Gustave Eiffel", "bridge"),
    ("Who wrote the novel on which the 1939 film Gone with the Wind was based?", "Margaret Mitchell", "bridge"),
    ("Which is older, the University of Oxford or the University of Cambridge?", "University of Oxford", "comparison"),
    ("What is the atomic number of the chemical element named after the creator of the periodic table?", "101",
     "bridge"),
]
STRATEGYQA_DEV = [
    ("demo-s0", "Could Mozart have listened to a recording of his own music?", False,
     ["Mozart died in 1791.", "The phonograph, the first device to record and play back sound, was invented in 1877."],
     ["When did Mozart die?", "When was sound recording invented?", "Is #2 before #1?"]),
    ("demo-s1", "Did the Roman Empire exist at the same time as the Han dynasty?", True,
     ["The Han dynasty ruled China from 206 BC to AD 220.", "The Roman Empire began in 27 BC."],
     ["When did the Han dynasty rule?", "When did the Roman Empire begin?", "Do #1 and #2 overlap?"]),
    ("demo-s2", "Could one Olympic swimming pool hold all the water of Lake Superior?", False,
     ["An Olympic swimming pool holds about 2,500 cubic metres of water.",
      "Lake Superior holds about 12,000 cubic kilometres of water."],
     ["How much water does an Olympic pool hold?", "How much water is in Lake Superior?", "Is #1 at least #2?"]),
]
# The evaluation split: the first question also appears in the fine-tuning file (a leak the lint finds).
HOTPOTQA_TEST = [
    ("Who discovered the largest moon of Saturn?", "Christiaan Huygens", "bridge"),
    ("The longest river in Africa flows into which sea?", "Mediterranean Sea", "bridge"),
]

# Episodes: lists of (thought, action, observation); a finish step's observation is filled in from its score.
GPT4_HOTPOTQA = [
    [("I need to find the composer of The Magic Flute, then where he was born.", "search[The Magic Flute composer]",
      "The Magic Flute (German: Die Zauberflöte) is an opera in two acts by Wolfgang Amadeus Mozart to a German "
      "libretto by Emanuel Schikaneder. It premiered in Vienna in 1791."),
     ("The composer is Wolfgang Amadeus Mozart. I need to find where Mozart was born.",
      "search[Wolfgang Amadeus Mozart birthplace]",
      "Wolfgang Amadeus Mozart was born on 27 January 1756 in Salzburg, then the capital of the "
      "Prince-Archbishopric of Salzburg."),
     ("Mozart was born in Salzburg.", "finish[Salzburg]", None)],
    [("I need to find the country whose capital is Lima, then which ocean lies along its coast.",
      "search[Lima capital of which country]",
      "Lima is the capital and largest city of Peru, in the desert zone of the central coastal part of the country."),
     ("Lima is the capital of Peru. Now I need the ocean along the coast of Peru.",
      "search[ocean along the coast of Peru]", "None"),
     ("The search found nothing. I will search for the geography of Peru instead.", "search[Geography of Peru]",
      "Peru is a country on the central western coast of South America facing the Pacific Ocean."),
     ("The coast of Peru faces the Pacific Ocean.", "finish[Pacific Ocean]", None)],
    [("I need to find the tower that was the entrance arch to the 1889 World's Fair, then whose company built it.",
      "search[entrance arch 1889 World's Fair Paris]", EIFFEL_UNSAFE),
     ("The tower is the Eiffel Tower, designed and built by the company of Gustave Eiffel.",
      "finish[Gustave Eiffel]", None)],
    [("I need to find who wrote the novel Gone with the Wind.", "search[Gone with the Wind novel author]",
      "Gone with the Wind is a novel by American writer Margaret Mitchell, first published in 1936. The 1939 film "
      "adaptation starred Vivien Leigh and Clark Gable."),
     ("The novel was written by Margaret Mitchell.", "finish[Margaret Mitchell]", None)],
    [("I need to find when the University of Oxford and the University of Cambridge were founded.",
      "search[University of Oxford founded]",
      "There is evidence of teaching at Oxford as early as 1096, making it the oldest university in the "
      "English-speaking world."),
     ("Teaching at Oxford began by 1096. Now I need the founding year of Cambridge.",
      "search[University of Cambridge founded]",
      "The University of Cambridge was founded in 1209 by scholars who left Oxford after a dispute with the "
      "townspeople."),
     ("Oxford (1096) is older than Cambridge (1209).", "finish[Oxford]", None)],
    [("The periodic table was created by Dmitri Mendeleev. I need the element named after him and its atomic "
      "number.", "search[element named after Dmitri Mendeleev]",
      "Mendelevium is a synthetic chemical element with the symbol Md and atomic number 101. It is named after "
      "Dmitri Mendeleev, the father of the periodic table."),
     ("The element named after Mendeleev is mendelevium.", "finish[Mendelevium]", None)],
]
LLAMA_HOTPOTQA = [
    [("I need to search where the composer of The Magic Flute was born.",
      "search[composer of The Magic Flute birthplace]",
      "The Magic Flute premiered on 30 September 1791 at the Theater auf der Wieden in Vienna, with Mozart "
      "conducting."),
     ("The Magic Flute premiered in Vienna, so its composer was born in Vienna.", "finish[Vienna]", None)],
    [("I need to search the ocean along the coast of Peru, whose capital is Lima.", "search[Peru coast ocean]",
      "Peru is a country on the central western coast of South America facing the Pacific Ocean."),
     ("The ocean is the Pacific Ocean.", "finish[Pacific Ocean]", None)],
    [("I need to search the entrance arch of the 1889 World's Fair.", "search[1889 World's Fair entrance arch",
      INVALID),
     ("I need to search the entrance arch of the 1889 World's Fair.", "search[1889 World's Fair entrance arch]",
      EIFFEL),
     ("The tower was designed and built by the company of Gustave Eiffel.", "finish[Gustave Eiffel]", None)],
    [("I need to search the author of Gone with the Wind.", "search[Gone with the Wind author]",
      "Gone with the Wind is a 1939 American epic historical romance film produced by David O. Selznick and "
      "directed by Victor Fleming."),
     ("Gone with the Wind was made by Victor Fleming.", "finish[Victor Fleming]", None)],
    [("I need to search the founding years of Oxford and Cambridge.", "search[Oxford and Cambridge founding years]",
      "Oxford is the oldest university in the English-speaking world, with teaching from 1096; Cambridge was "
      "founded in 1209."),
     ("The University of Oxford is older.", "finish[University of Oxford]", None)],
    [("I need to search the element named after the creator of the periodic table.",
      "search[element named after creator of periodic table]",
      "The periodic table was first published by Dmitri Mendeleev in 1869."),
     ("I need to search the element named after Dmitri Mendeleev.", "search[Dmitri Mendeleev]", MENDELEEV),
     ("I need to search the element named after Dmitri Mendeleev.", "search[Dmitri Mendeleev]", MENDELEEV)],
]
GPT4_STRATEGYQA = [
    [("I need to find when Mozart died and when sound recording was invented.", "search[Mozart death year]",
      "Wolfgang Amadeus Mozart died in Vienna on 5 December 1791, aged 35."),
     ("Mozart died in 1791. Now I need to find when sound recording was invented.",
      "search[invention of sound recording and playback]",
      "Thomas Edison invented the phonograph, the first device that could both record and reproduce sound, in 1877."),
     ("Recording was invented in 1877, 86 years after Mozart died, so he could not have listened to one.",
      "finish[No]", None)],
    [("I need the dates of the Han dynasty.", "search[Han dynasty dates]",
      "The Han dynasty ruled China from 206 BC to AD 220."),
     ("The Han dynasty ended in AD 220, and the Roman Empire was founded after that, so they did not overlap.",
      "finish[No]", None)],
    [("An Olympic pool holds about 2,500 cubic metres. I need the volume of Lake Superior.",
      "search[Lake Superior volume]",
      "Lake Superior is the largest of the Great Lakes of North America by volume, holding about 12,000 cubic "
      "kilometres of water."),
     ("12,000 cubic kilometres is far more than 2,500 cubic metres, so the answer is no.", "finish[No]", None)],
]
LLAMA_STRATEGYQA = [
    [("I need to search when Mozart died.", "search[Mozart death]",
      "Wolfgang Amadeus Mozart died in Vienna on 5 December 1791."),
     ("Mozart died in 1791 and sound recording came in 1877, so the answer is no.", "finish[]", None)],
    [("I need to search the Han dynasty and the Roman Empire.", "search[Han dynasty and Roman Empire]",
      "The Han dynasty (206 BC - AD 220) was contemporary with the late Roman Republic and the early Roman Empire; "
      "silk from Han China reached Rome."),
     ("They existed at the same time, so the answer is yes.", "finish[Yes]", None)],
    [("I need to search how much water Lake Superior holds.", "search[Lake Superior water]",
      "Lake Superior holds about 12,000 cubic kilometres of water."),
     ("That is far more than any swimming pool, so the answer is no.", "finish[No]", None)],
]

# Fine-tuning examples (training questions): ReAct, CoT and Reflexion, as FireAct mixes them.
RIVER_Q = "What is the name of the river that runs through the city where the Beatles formed?"
FINETUNE = [
    (RIVER_Q, [
        ("I need to find the city where the Beatles formed, then the river that runs through it.",
         "search[city where the Beatles formed]", "The Beatles were an English rock band formed in Liverpool in 1960."),
        ("The Beatles formed in Liverpool. Now I need the river that runs through Liverpool.",
         "search[river Liverpool]", "Liverpool lies on the eastern side of the estuary of the River Mersey."),
        ("The river is the River Mersey.", "finish[River Mersey]", None)]),
    (HOTPOTQA_TEST[0][0], [
        ("I need to find the largest moon of Saturn, then who discovered it.", "search[largest moon of Saturn]",
         "Titan is the largest moon of Saturn and the second-largest natural satellite in the Solar System."),
        ("The largest moon of Saturn is Titan. Now I need who discovered Titan.", "search[Titan discovery]",
         "Titan was discovered on 25 March 1655 by the Dutch astronomer Christiaan Huygens."),
        ("Titan was discovered by Christiaan Huygens.", "finish[Christiaan Huygens]", None)]),
    ("In which country is the city that hosted the 1992 Summer Olympics?", [
        ("The 1992 Summer Olympics were held in Barcelona, which is in Spain.", "finish[Spain]", None)]),
    ("What language do most people speak in the country whose capital is Brasília?", [
        ("I need to find the country whose capital is Brasília, then the language most people there speak.",
         "search[Brasília]", "Brasília is the federal capital of Brazil, inaugurated in 1960."),
        ("Brasília is the capital of Brazil. Now I need the language most people in Brazil speak.",
         "search[people of Brazil]", "Brazil is the largest country in South America and in Latin America."),
        ("That does not name a language. I will search again.", "search[Brazil population]",
         "Brazil has a population of more than 200 million people, the seventh largest in the world."),
        ("Now that I haven't solved the task within 3 steps, let me do a reflection and think about how to improve "
         "my strategy. I searched for Brazil in general; I should search for its language directly.",
         "search[Brazil official language]",
         "Portuguese is the official and most widely spoken language of Brazil, spoken by nearly all of its people."),
        ("Most people in Brazil speak Portuguese.", "finish[Portuguese]", None)]),
    ("Did Shakespeare ever make a telephone call?", [
        ("I need to find when Shakespeare died and when the telephone was invented.",
         "search[William Shakespeare death]", "William Shakespeare died on 23 April 1616 in Stratford-upon-Avon."),
        ("Shakespeare died in 1616. Now I need when the telephone was invented.", "search[invention of the telephone]",
         "Alexander Graham Bell was granted the first patent for the telephone in 1876."),
        ("The telephone came 260 years after Shakespeare died, so the answer is no.", "finish[No]", None)]),
    ("Question: Which planet in the Solar System has the shortest orbital period?\nA. Venus\nB. Mercury\nC. Mars"
     "\nD. Earth", [
        ("The planet closest to the Sun moves fastest and has the shortest orbit: Mercury, about 88 days. That is "
         "option B.", "finish[B]", None)]),
    (RIVER_Q, [
        ("The Beatles formed in Liverpool, and Liverpool lies on the River Mersey.", "finish[River Mersey]", None)]),
]

RUNS = [
    # file name (FireAct's pattern), task, variant (text: Alpaca template; chat: messages), episodes
    ("hotpotqa_dev_0_6_gpt-4_0.0_2026-11-02-10-15-00.json", "hotpotqa", "chat", GPT4_HOTPOTQA),
    ("hotpotqa_dev_0_6_llama-2-7b-lora_0.7_2026-11-03-09-30-00.json", "hotpotqa", "text", LLAMA_HOTPOTQA),
    ("strategyqa_dev_0_3_gpt-4_0.0_2026-11-02-11-05-00.json", "strategyqa", "chat", GPT4_STRATEGYQA),
    ("strategyqa_dev_0_3_llama-2-7b-lora_0.7_2026-11-03-10-00-00.json", "strategyqa", "text", LLAMA_STRATEGYQA),
]


def golds(task: str) -> list[tuple[str, str | bool]]:
    if task == "hotpotqa":
        return [(q, a) for q, a, _ in HOTPOTQA_DEV]
    return [(q, a) for _, q, a, _, _ in STRATEGYQA_DEV]


def final_answer(episode: list[tuple]) -> str | None:
    thought, action, _ = episode[-1]
    return action[len("finish["):-1] if action.startswith("finish[") and action.endswith("]") else None


def lines_of(episode: list[tuple], reward: bool | None) -> list[tuple[str, str, str]]:
    """(thought, action, observation) with the finish step's observation filled in."""
    return [(t, a, o if o is not None else f"Episode finished, reward = {reward}") for t, a, o in episode]


def run_entry(task: str, variant: str, question: str, gold: str | bool, episode: list[tuple]) -> dict:
    pred = final_answer(episode)
    score = get_task(task).score(pred or "", str(gold))
    steps = lines_of(episode, score.reward if pred is not None else None)
    entry = {"reward": score.reward, "em": bool(score.em), "f1": score.f1,
             "gt": gold if isinstance(gold, bool) else normalize_answer(gold),
             "pred": normalize_answer(pred or "")}
    if variant == "text":
        body = "".join(f"Thought: {t}\nAction: {a}\nObservation: {o}\n" for t, a, o in steps)
        traj = ALPACA_TEMPLATE.format(instruction=question) + body
        entry.update(prompt="", traj=traj, traj_by_line=traj.split("\n"))
        return entry
    messages = [{"role": "user", "content": question}]
    for t, a, o in steps:
        messages += [{"role": "assistant", "content": f"Thought: {t}\nAction: {a}"},
                     {"role": "user", "content": f"Observation: {o}"}]
    entry.update(prompt=[{"role": "system", "content": REACT_SYSTEM}], traj=messages)
    return entry


def run_file(task: str, variant: str, episodes: list[list[tuple]]) -> dict:
    pairs = golds(task)
    assert len(pairs) == len(episodes), task
    return {str(i): run_entry(task, variant, q, gold, ep) for i, ((q, gold), ep) in enumerate(zip(pairs, episodes))}


def finetune_rows() -> list[dict]:
    rows = []
    for question, episode in FINETUNE:
        body = "".join(f"Thought: {t}\nAction: {a}\nObservation: {o}\n" for t, a, o in lines_of(episode, True))
        rows.append({"instruction": question, "input": "", "output": body})
    return rows


def task_files() -> dict[str, object]:
    return {
        "tasks/hotpotqa/dev.json": [{"question": q, "answer": a, "type": k} for q, a, k in HOTPOTQA_DEV],
        "tasks/hotpotqa/test.json": [{"question": q, "answer": a, "type": k} for q, a, k in HOTPOTQA_TEST],
        "tasks/strategyqa/dev.json": [
            {"qid": qid, "question": q, "answer": a, "facts": f, "decomposition": d}
            for qid, q, a, f, d in STRATEGYQA_DEV
        ],
    }


def write_all(out: Path) -> list[Path]:
    files: dict[str, object] = {f"trajs/{name}": run_file(task, variant, episodes)
                                for name, task, variant, episodes in RUNS}
    files["finetune/alpaca_demo_multimethod.json"] = finetune_rows()
    files.update(task_files())
    written = []
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: datasets/)")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(f"{path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
