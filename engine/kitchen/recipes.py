"""The kitchen's dishes with recipes written for this project, and the recipe text format."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.evaluation.recipe import format_recipe as recipe_text

Colour = tuple[int, int, int]

# How a dish is served, seen from above (the glass from the side); render.py draws each one.
VESSELS = ("pot", "bowl", "plate", "pan", "glass", "tray", "board", "platter")


@dataclass(frozen=True)
class Dish:
    """One dish: its recipe and how it looks on screen.

    `palette[0]` is the finished dish's main colour, `palette[1]` its raw or secondary colour,
    the rest garnish and accents.
    """

    slug: str
    name: str
    recipe_type: str  # three digits, like YouCook2's recipe types ("101")
    ingredients: tuple[str, ...]
    steps: tuple[str, ...]
    palette: tuple[Colour, ...]
    vessel: str = field(default="plate")


DISHES: tuple[Dish, ...] = (
    Dish(
        slug="tomato-soup",
        name="Tomato Soup",
        recipe_type="101",
        ingredients=(
            "2 tbsp olive oil",
            "1 onion, diced",
            "3 cloves garlic, minced",
            "4 cups chopped tomatoes",
            "2 cups vegetable broth",
            "1/2 tsp salt",
            "1/4 cup cream",
        ),
        steps=(
            "Heat the olive oil in a pot over medium heat.",
            "Cook the onion and garlic until soft, about 5 minutes.",
            "Add the tomatoes, broth and salt, then simmer for 20 minutes.",
            "Blend the soup until smooth.",
            "Stir in the cream and serve hot.",
        ),
        palette=((200, 40, 30), (235, 120, 45), (245, 235, 215), (60, 140, 50)),
        vessel="pot",
    ),
    Dish(
        slug="garden-salad",
        name="Garden Salad",
        recipe_type="102",
        ingredients=(
            "4 cups chopped lettuce",
            "1 cup cherry tomatoes, halved",
            "1 cucumber, sliced",
            "1/2 red onion, thinly sliced",
            "3 tbsp olive oil",
            "1 tbsp lemon juice",
            "1/4 tsp salt",
        ),
        steps=(
            "Wash the lettuce and dry it well.",
            "Place the lettuce, tomatoes, cucumber and onion in a bowl.",
            "Whisk the olive oil, lemon juice and salt together.",
            "Pour the dressing over the salad and toss to coat.",
        ),
        palette=((70, 165, 55), (175, 215, 140), (225, 45, 45), (150, 60, 140)),
        vessel="bowl",
    ),
    Dish(
        slug="pancakes",
        name="Pancakes",
        recipe_type="103",
        ingredients=(
            "1 1/2 cups flour",
            "2 tbsp sugar",
            "2 tsp baking powder",
            "1/4 tsp salt",
            "1 1/4 cups milk",
            "1 egg",
            "3 tbsp melted butter",
        ),
        steps=(
            "Whisk the flour, sugar, baking powder and salt in a bowl.",
            "Add the milk, egg and melted butter, then stir until just combined.",
            "Heat a pan over medium heat and brush it with butter.",
            "Pour 1/4 cup of batter into the pan for each pancake.",
            "Cook until bubbles form, then flip and cook 1 more minute.",
            "Stack the pancakes on a plate and serve warm.",
        ),
        palette=((215, 155, 65), (245, 225, 170), (250, 225, 110), (140, 65, 20)),
        vessel="plate",
    ),
    Dish(
        slug="fried-rice",
        name="Vegetable Fried Rice",
        recipe_type="104",
        ingredients=(
            "3 cups cooked rice",
            "2 eggs, beaten",
            "1 cup peas and diced carrots",
            "3 green onions, sliced",
            "2 cloves garlic, minced",
            "2 tbsp soy sauce",
            "1 tbsp vegetable oil",
        ),
        steps=(
            "Heat the vegetable oil in a pan over high heat.",
            "Scramble the eggs in the pan, then move them to a plate.",
            "Cook the garlic, peas and carrots for 3 minutes.",
            "Add the rice and soy sauce and stir-fry for 5 minutes.",
            "Stir in the eggs and green onions and serve.",
        ),
        palette=((225, 200, 150), (245, 240, 225), (240, 125, 30), (80, 170, 60)),
        vessel="pan",
    ),
    Dish(
        slug="spaghetti-bolognese",
        name="Spaghetti Bolognese",
        recipe_type="105",
        ingredients=(
            "8 oz spaghetti",
            "1 tbsp olive oil",
            "1 onion, diced",
            "2 cloves garlic, minced",
            "1/2 lb ground beef",
            "2 cups tomato sauce",
            "1/2 tsp salt",
            "1/4 cup grated parmesan",
        ),
        steps=(
            "Boil the spaghetti in salted water for 10 minutes, then drain.",
            "Heat the olive oil in a pan and cook the onion and garlic.",
            "Add the ground beef and cook until browned.",
            "Pour in the tomato sauce, add the salt and simmer for 15 minutes.",
            "Serve the sauce over the spaghetti with parmesan on top.",
        ),
        palette=((150, 50, 30), (240, 215, 130), (250, 245, 220), (70, 140, 50)),
        vessel="plate",
    ),
    Dish(
        slug="berry-smoothie",
        name="Berry Smoothie",
        recipe_type="106",
        ingredients=(
            "1 cup frozen mixed berries",
            "1 banana, sliced",
            "1/2 cup plain yogurt",
            "1 cup milk",
            "1 tbsp honey",
        ),
        steps=(
            "Put the berries and banana in a blender.",
            "Add the yogurt, milk and honey.",
            "Blend on high for 1 minute until smooth.",
            "Pour the smoothie into a glass and serve cold.",
        ),
        palette=((135, 40, 125), (60, 45, 140), (235, 130, 175), (245, 235, 245)),
        vessel="glass",
    ),
    Dish(
        slug="scrambled-eggs",
        name="Scrambled Eggs",
        recipe_type="107",
        ingredients=(
            "4 eggs",
            "2 tbsp milk",
            "1 tbsp butter",
            "1/4 tsp salt",
            "1/8 tsp black pepper",
            "1 tbsp chopped chives",
        ),
        steps=(
            "Whisk the eggs, milk, salt and pepper in a bowl.",
            "Melt the butter in a pan over low heat.",
            "Pour in the eggs and stir gently for 3 minutes.",
            "Take the pan off the heat while the eggs are still soft.",
            "Sprinkle with chives and serve.",
        ),
        palette=((255, 215, 40), (250, 240, 170), (35, 125, 40), (40, 40, 40)),
        vessel="pan",
    ),
    Dish(
        slug="chocolate-brownies",
        name="Chocolate Brownies",
        recipe_type="108",
        ingredients=(
            "1/2 cup butter, melted",
            "1 cup sugar",
            "2 eggs",
            "1 tsp vanilla extract",
            "1/3 cup cocoa powder",
            "1/2 cup flour",
            "1/4 tsp salt",
        ),
        steps=(
            "Heat the oven to 350 degrees F and grease a square pan.",
            "Stir the melted butter, sugar, eggs and vanilla in a bowl.",
            "Mix in the cocoa powder, flour and salt.",
            "Spread the batter in the pan.",
            "Bake for 25 minutes, then cool and cut into squares.",
        ),
        palette=((70, 35, 20), (120, 70, 35), (250, 250, 250), (190, 150, 100)),
        vessel="tray",
    ),
    Dish(
        slug="beet-hummus",
        name="Beet Hummus",
        recipe_type="109",
        ingredients=(
            "1 can chickpeas, drained",
            "1 cooked beet, chopped",
            "2 tbsp tahini",
            "2 tbsp lemon juice",
            "1 clove garlic",
            "3 tbsp olive oil",
            "1/2 tsp salt",
        ),
        steps=(
            "Put the chickpeas, beet and garlic in a blender.",
            "Add the tahini, lemon juice and salt.",
            "Blend until smooth, adding the olive oil slowly.",
            "Spoon the hummus into a bowl and drizzle with olive oil.",
        ),
        palette=((185, 25, 95), (225, 200, 140), (205, 185, 60), (60, 150, 60)),
        vessel="bowl",
    ),
    Dish(
        slug="grilled-salmon",
        name="Grilled Salmon with Asparagus",
        recipe_type="110",
        ingredients=(
            "2 salmon fillets",
            "1 bunch asparagus, trimmed",
            "2 tbsp olive oil",
            "2 cloves garlic, minced",
            "1/2 tsp salt",
            "1/4 tsp black pepper",
            "1 lemon, sliced",
        ),
        steps=(
            "Heat the grill to medium high.",
            "Brush the salmon and asparagus with olive oil and garlic.",
            "Season with salt and pepper.",
            "Grill the salmon for 4 minutes on each side.",
            "Grill the asparagus for 5 minutes, turning once.",
            "Serve with the lemon slices.",
        ),
        palette=((250, 125, 95), (80, 150, 60), (250, 240, 90), (95, 50, 40)),
        vessel="platter",
    ),
    Dish(
        slug="avocado-toast",
        name="Avocado Toast",
        recipe_type="111",
        ingredients=(
            "2 slices bread",
            "1 ripe avocado",
            "1 tbsp lemon juice",
            "1/4 tsp salt",
            "1 tbsp olive oil",
            "1/4 tsp red pepper flakes",
        ),
        steps=(
            "Toast the bread until golden.",
            "Mash the avocado with the lemon juice and salt.",
            "Spread the avocado on the toast.",
            "Drizzle with olive oil and sprinkle with red pepper flakes.",
        ),
        palette=((150, 195, 70), (195, 135, 60), (200, 35, 30), (245, 240, 225)),
        vessel="board",
    ),
    Dish(
        slug="chicken-noodle-soup",
        name="Chicken Noodle Soup",
        recipe_type="112",
        ingredients=(
            "1 tbsp vegetable oil",
            "1 onion, diced",
            "2 carrots, sliced",
            "2 stalks celery, sliced",
            "6 cups chicken broth",
            "2 cups egg noodles",
            "2 cups shredded cooked chicken",
            "1/2 tsp salt",
        ),
        steps=(
            "Heat the vegetable oil in a pot over medium heat.",
            "Cook the onion, carrots and celery for 5 minutes.",
            "Pour in the chicken broth and bring to a boil.",
            "Add the noodles and cook for 8 minutes.",
            "Stir in the chicken and salt and simmer for 2 minutes.",
        ),
        palette=((225, 185, 100), (245, 230, 180), (235, 115, 35), (125, 180, 85)),
        vessel="pot",
    ),
)

_BY_SLUG = {dish.slug: dish for dish in DISHES}


def dish_by_slug(slug: str) -> Dish:
    """The dish with this slug. Raises KeyError naming the slug and the known ones."""
    try:
        return _BY_SLUG[slug]
    except KeyError:
        known = ", ".join(_BY_SLUG)
        raise KeyError(f"no dish {slug!r} in the kitchen (known: {known})") from None


def format_recipe(dish: Dish) -> str:
    """The dish's recipe as the text a model is trained to write (engine.evaluation.recipe's layout)."""
    return recipe_text(dish.name, dish.ingredients, dish.steps)
