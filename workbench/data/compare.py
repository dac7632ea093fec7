"""A reference recipe beside one variant's generation for an eval sample, with its judgments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class EvalSampleChoice:
    id: int
    label: str
    eval_set: str


@dataclass(frozen=True)
class VariantChoice:
    id: int
    name: str


@dataclass(frozen=True)
class CompareChoices:
    samples: tuple[EvalSampleChoice, ...]
    variants: tuple[VariantChoice, ...]


@dataclass(frozen=True)
class JudgmentLine:
    judge: str
    protocol: str
    prompt_version: str
    score: float | None
    verdict: str


@dataclass(frozen=True)
class GenerationView:
    id: int
    text: str
    frame_times: tuple[float, ...]
    decoding: tuple[tuple[str, str], ...]
    created: str


@dataclass(frozen=True)
class IngredientCheck:
    line_no: int  # index into the reference's lines
    food: str
    found: bool


@dataclass(frozen=True)
class CompareView:
    sample_id: int
    external_id: str
    eval_set: str
    variant: VariantChoice
    reference: str
    media_path: str | None
    generation: GenerationView | None
    judgments: tuple[JudgmentLine, ...]
    ingredients: tuple[IngredientCheck, ...]

    @property
    def covered(self) -> int:
        return sum(1 for check in self.ingredients if check.found)


def _words(text: str) -> set[str]:
    from engine.recipe import content_words

    words = content_words(text)
    # A crude plural fold, so "eggs" in a reference matches "egg" in a generation and back.
    return words | {w[:-1] for w in words if w.endswith("s") and len(w) > 3}


def check_ingredients(reference: str, generation: str) -> tuple[IngredientCheck, ...]:
    """For each ingredient line of the reference: is its food named in the generation?

    A food counts as present when every word of its name (quantity and unit removed) appears
    in the generation, case-insensitively; a simple overlap, not the judge's score.
    """
    from engine.recipe import ingredient_food, parse_recipe

    ingredients = parse_recipe(reference).ingredients
    generated = _words(generation)
    checks = []
    lines = reference.splitlines()
    line_no = 0
    for item in ingredients:
        # parse_recipe gives the items in order; find each one's line to mark it in place.
        while line_no < len(lines) and item not in lines[line_no]:
            line_no += 1
        if line_no == len(lines):
            break
        food = ingredient_food(item) or item
        needed = _words(food)
        found = bool(needed) and all(w in generated or (w.endswith("s") and w[:-1] in generated) for w in needed)
        checks.append(IngredientCheck(line_no=line_no, food=food, found=found))
        line_no += 1
    return tuple(checks)


def load_choices(engine: Engine) -> CompareChoices:
    """The samples of every eval dataset and the variants that can be compared."""
    from db.queries import list_datasets, list_samples, list_variants
    from db.store import session_scope

    with session_scope(engine) as session:
        samples = []
        for dataset in list_datasets(session, purpose="eval"):
            for sample in list_samples(session, dataset_id=dataset.id, limit=None):
                samples.append(EvalSampleChoice(sample.id, f"{sample.external_id} · {dataset.name}", dataset.name))
        variants = tuple(VariantChoice(v.id, v.name) for v in list_variants(session))
    return CompareChoices(samples=tuple(samples), variants=variants)


def load_view(engine: Engine, *, sample: EvalSampleChoice, variant: VariantChoice) -> CompareView | None:
    """The comparison for one sample and variant, using the variant's latest generation;
    None when the sample no longer exists."""
    from db.queries import get_sample, judgments_for_generation, list_generations
    from db.store import session_scope
    from workbench.data.jobs import format_local

    with session_scope(engine) as session:
        stored = get_sample(session, sample_id=sample.id)
        if stored is None:
            return None
        generations = list_generations(session, variant_id=variant.id, sample_id=sample.id)
        generation = generations[-1] if generations else None
        judgments: tuple[JudgmentLine, ...] = ()
        view: GenerationView | None = None
        if generation is not None:
            judgments = tuple(
                JudgmentLine(j.judge, j.protocol, j.prompt_version, j.score, j.verdict)
                for j in judgments_for_generation(session, generation_id=generation.id)
            )
            view = GenerationView(
                id=generation.id,
                text=generation.text,
                frame_times=tuple(float(t) for t in generation.frame_times),
                decoding=tuple((str(k), str(v)) for k, v in sorted(generation.decoding.items())),
                created=format_local(generation.created_at),
            )
        return CompareView(
            sample_id=stored.id,
            external_id=stored.external_id,
            eval_set=sample.eval_set,
            variant=variant,
            reference=stored.answer,
            media_path=stored.media_path,
            generation=view,
            judgments=judgments,
            ingredients=check_ingredients(stored.answer, view.text) if view else (),
        )

