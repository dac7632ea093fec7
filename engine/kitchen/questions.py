"""General cooking questions with short factual answers, written for this project."""

from __future__ import annotations

QUESTIONS: tuple[tuple[str, str], ...] = (
    (
        "How long should I rest a steak after cooking?",
        "Rest a steak for about 5 to 10 minutes so the juices settle back into the meat.",
    ),
    (
        "Why should I salt pasta water?",
        "Salt in the water seasons the pasta from the inside as it cooks.",
    ),
    (
        "How do I know when oil in a pan is hot enough?",
        "The oil shimmers and a drop of water sizzles at once when it is ready.",
    ),
    (
        "What does it mean to simmer?",
        "Simmering is cooking just below a boil, with small bubbles rising slowly.",
    ),
    (
        "How do I stop a cutting board from sliding?",
        "Put a damp towel under the board to keep it in place.",
    ),
    (
        "How can I tell if an egg is fresh?",
        "Place it in a bowl of water: a fresh egg sinks and lies flat.",
    ),
    (
        "Why do onions make my eyes water?",
        "Cutting an onion releases a gas that irritates the eyes."
        " A sharp knife releases less of it.",
    ),
    (
        "How long should I boil an egg for a hard yolk?",
        "Boil the egg for about 10 minutes, then cool it in cold water.",
    ),
    (
        "What is the difference between baking soda and baking powder?",
        "Baking soda needs an acid to rise, while baking powder already contains one.",
    ),
    (
        "How do I keep cut avocado from turning brown?",
        "Brush the cut side with lemon juice and cover it tightly.",
    ),
    (
        "How do I cook rice so it is not sticky?",
        "Rinse the rice until the water runs clear, then cook it with the right amount of water.",
    ),
    (
        "What temperature should chicken reach to be safe?",
        "Chicken is safe when the thickest part reaches 165 degrees F.",
    ),
    (
        "How do I mince garlic quickly?",
        "Crush the clove with the flat of the knife, remove the skin, then chop it finely.",
    ),
    (
        "Why should I let dough rest?",
        "Resting relaxes the gluten, so the dough is easier to roll and shape.",
    ),
    (
        "How do I stop pasta from sticking together?",
        "Use plenty of boiling water and stir the pasta during the first few minutes.",
    ),
    (
        "What does it mean to saute?",
        "To saute is to cook food quickly in a little oil over fairly high heat.",
    ),
    (
        "How do I store fresh herbs?",
        "Wrap the herbs in a damp paper towel and keep them in the fridge.",
    ),
    (
        "How can I tell when pancakes are ready to flip?",
        "Flip them when bubbles form on top and the edges look dry.",
    ),
    (
        "Why does my sauce need to be reduced?",
        "Reducing lets water boil off, which thickens the sauce and deepens its flavor.",
    ),
    (
        "How long can cooked food stay out of the fridge?",
        "Cooked food should go into the fridge within 2 hours.",
    ),
    (
        "How do I soften butter quickly?",
        "Cut the butter into small cubes and leave them at room temperature for 15 minutes.",
    ),
    (
        "What is the best way to thaw frozen meat?",
        "Thaw it overnight in the fridge, or in cold water that you change every 30 minutes.",
    ),
    (
        "Why should I preheat the oven?",
        "A preheated oven cooks food evenly from the start, which matters most for baking.",
    ),
    (
        "How do I make a simple salad dressing?",
        "Whisk 3 parts olive oil with 1 part lemon juice or vinegar, then add salt.",
    ),
    (
        "How do I know when fish is cooked?",
        "Cooked fish turns opaque and flakes easily with a fork.",
    ),
    (
        "What does it mean to fold ingredients?",
        "Folding is gently mixing with a spatula so the batter keeps its air.",
    ),
    (
        "How do I keep a pot from boiling over?",
        "Lower the heat to a simmer and leave the lid slightly open.",
    ),
    (
        "Why do recipes say to use room temperature eggs?",
        "Room temperature eggs mix more evenly into batter and help it rise.",
    ),
    (
        "How do I fix a soup that is too salty?",
        "Add more broth or water, or some unsalted vegetables, to dilute the salt.",
    ),
    (
        "How do I toast nuts?",
        "Toast them in a dry pan over medium heat for 3 to 5 minutes, stirring often.",
    ),
    (
        "What is the safest way to cut an onion?",
        "Cut it in half first so it lies flat, and keep your fingertips curled in.",
    ),
    (
        "How do I ripen an avocado faster?",
        "Put it in a paper bag with a banana at room temperature.",
    ),
    (
        "Why does bread go stale?",
        "The starch in bread dries out and hardens over time. Keep it in a sealed bag.",
    ),
    (
        "How much dry pasta should I cook per person?",
        "About 3 ounces of dry pasta is one serving.",
    ),
    (
        "How do I make scrambled eggs creamy?",
        "Cook them slowly over low heat and take them off while they are still soft.",
    ),
    (
        "What does it mean to blanch vegetables?",
        "Blanching is boiling vegetables briefly and then cooling them in ice water.",
    ),
    (
        "How do I keep brownies fudgy?",
        "Take them out of the oven while the center is still slightly soft.",
    ),
    (
        "How long does cooked rice keep in the fridge?",
        "Cooked rice keeps for about 4 days in a sealed container in the fridge.",
    ),
    (
        "How do I clean a cast iron pan?",
        "Rinse it with hot water, scrub it, dry it well and rub in a little oil.",
    ),
    (
        "Why should I pat meat dry before searing?",
        "Dry meat browns well, while a wet surface steams instead of searing.",
    ),
)
