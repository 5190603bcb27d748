"""The phrasings of every template family, as ``str.format`` strings over named slots.

Slots are filled with ready-made markup, so a phrasing can never forget a tag:
``{ref}`` -> ``<ref>expression</ref>``, ``{refs}`` -> several of those joined with commas and "and",
``{mask}`` -> ``<|mt_start|>...<|mt_end|>``, ``{box}`` -> ``<box>[x1, y1, x2, y2]</box>``,
``{points}`` -> ``<point>[x, y]</point>, ...``, ``{n_tokens}`` -> an int, ``{question}`` -> free text,
``{options}`` -> one "A. expression" line per option, ``{label}`` -> an option letter,
``{answer}`` -> "Yes" or "No", ``{items}`` -> the multi-target items joined by spaces.

Index 0 of each list is the canonical phrasing used by ``style="official"``. Where the official HiMTok code has
a phrasing it is reproduced there verbatim (marked below); every other phrasing was written for this package.
Rules the tests enforce: at least 10 distinct phrasings per list, exactly the list's slots in each phrasing, and no
sentence of ours starts with "yes" or "no" (so the parser finds only the ``{answer}`` slot).
"""

from __future__ import annotations

# Shared by every family whose answer is a single mask.
MASK_RESPONSES = (
    "The mask appears at {mask}.",  # official (example JSONL)
    "Here is the mask: {mask}.",
    "{mask}",
    "Sure, the segmentation mask is {mask}.",
    "The region is covered by {mask}.",
    "Its mask is {mask}.",
    "Segmentation result: {mask}.",
    "Sure. {mask}",
    "This mask covers it: {mask}.",
    "The requested mask: {mask}.",
    "I found it; the mask is {mask}.",
    "Mask: {mask}.",
)

SEGMENT_INSTRUCTIONS = (
    "Segment {ref}.",  # official (example JSONL, RefCOCO evaluation)
    "Please segment {ref} in this image.",
    "Create a segmentation mask for {ref}.",
    "Can you produce the mask of {ref}?",
    "Where is {ref}? Answer with its mask.",
    "Give me the segmentation mask of {ref}.",
    "Outline {ref} with a mask.",
    "Find {ref} and segment it.",
    "Which pixels belong to {ref}? Respond with a mask.",
    "Generate the mask that covers {ref}.",
    "Mark {ref} in the picture with a segmentation mask.",
    "Show me the region of {ref} as a mask.",
)

SEGMENT_THEN_BOX_INSTRUCTIONS = (
    "First create the segmentation mask for {ref}, then identify its bounding box.",  # official (REC evaluation)
    "Segment {ref} first, and then give its bounding box.",
    "Produce the mask of {ref}, followed by the box that encloses it.",
    "Find {ref}: output its mask and then its bounding box.",
    "Please give the mask and then the bounding box of {ref}.",
    "Locate {ref} by segmenting it first and boxing it second.",
    "What are the mask and the bounding box of {ref}? Mask first.",
    "Create a mask for {ref}; after that, report its bounding box.",
    "Segment {ref}, then derive the bounding box from the mask.",
    "Give the segmentation of {ref} and then its box coordinates.",
    "Mask {ref} first, then tell me where its bounding box is.",
    "Ground {ref}: mask first, bounding box next.",
)

SEGMENT_THEN_BOX_RESPONSES = (
    "The mask appears at {mask}, and the bounding box is {box}.",
    "Mask: {mask}. Box: {box}.",
    "Its mask is {mask}, so its bounding box is {box}.",
    "{mask} {box}",
    "The segmentation is {mask}; the box around it is {box}.",
    "Here is the mask {mask} and the bounding box {box}.",
    "Mask first: {mask}. Then the box: {box}.",
    "The object is covered by {mask} and enclosed by {box}.",
    "Segmentation {mask}, bounding box {box}.",
    "From the mask {mask}, the bounding box is {box}.",
    "It is masked by {mask}; its box is {box}.",
    "Result: {mask}, boxed at {box}.",
)

BOX_INSTRUCTIONS = (
    "Give the bounding box of {ref}.",
    "Where is {ref}? Answer with a bounding box.",
    "Locate {ref} with a box.",
    "Provide the bounding box coordinates for {ref}.",
    "Draw a box around {ref}.",
    "Which box contains {ref}?",
    "Find {ref} and report its bounding box.",
    "Output the box that encloses {ref}.",
    "What are the box coordinates of {ref}?",
    "Detect {ref} and give its box.",
    "Box {ref} in this image.",
    "Tell me the bounding box of {ref}.",
)

BOX_RESPONSES = (
    "The bounding box is {box}.",
    "{box}",
    "It is at {box}.",
    "Here is the box: {box}.",
    "Box: {box}.",
    "The object lies within {box}.",
    "Sure, {box}.",
    "It is enclosed by {box}.",
    "The coordinates are {box}.",
    "Found it at {box}.",
    "Located at {box}.",
    "Its bounding box: {box}.",
)

BOX_TO_MASK_INSTRUCTIONS = (
    "Segment the object in {box}.",
    "Create the mask of the object inside {box}.",
    "What is the mask of the main object within {box}?",
    "Give the segmentation mask for the region {box}.",
    "Turn the box {box} into a precise mask.",
    "Segment whatever is enclosed by {box}.",
    "Produce a mask for the object bounded by {box}.",
    "Please mask the object that {box} surrounds.",
    "The box {box} contains an object; segment it.",
    "Refine {box} into a segmentation mask.",
    "Which pixels of {box} belong to the object? Answer with a mask.",
    "Mask the thing located at {box}.",
)

BOX_POINTS_TO_MASK_INSTRUCTIONS = (
    "Segment the object in {box} that contains {points}.",
    "Using the box {box} and the points {points}, create a mask.",
    "Mask the object inside {box}; it passes through {points}.",
    "Inside {box}, segment the object marked by {points}.",
    "Give the mask of the object at {points}, bounded by {box}.",
    "The object lies in {box} and covers {points}. Segment it.",
    "Produce a segmentation mask from the box {box} and the clicks {points}.",
    "Which object is in {box} and under {points}? Answer with its mask.",
    "Combine {box} with {points} to segment the object.",
    "Segment what {points} indicate, staying within {box}.",
    "Box prompt {box}, point prompts {points}: return the mask.",
    "Please mask the object that {box} encloses and {points} touch.",
)

POINTS_TO_MASK_INSTRUCTIONS = (
    "Segment the object at {points}.",
    "Create the mask of the object marked by {points}.",
    "Which object is under {points}? Answer with its mask.",
    "Give the segmentation mask of the object containing {points}.",
    "Mask the thing that {points} point to.",
    "Produce a mask for the object clicked at {points}.",
    "Segment whatever lies at {points}.",
    "The points {points} fall on an object; segment it.",
    "Point prompts {points}: return the mask.",
    "Please mask the object touched by {points}.",
    "Turn the clicks {points} into a segmentation mask.",
    "Find the object at {points} and outline it with a mask.",
)

# Worded so that any count from 1 to 32 reads correctly.
SEGMENT_N_TOKENS_INSTRUCTIONS = (
    "Segment {ref} with a mask of length {n_tokens}.",
    "Create the mask of {ref}; token budget: {n_tokens}.",
    "Segment {ref} using a mask-token count of {n_tokens}.",
    "Give a length-{n_tokens} mask for {ref}.",
    "Segment {ref}, limiting the mask to a length of {n_tokens}.",
    "With a budget of {n_tokens} mask token(s), segment {ref}.",
    "Produce the segmentation of {ref} at hierarchy level {n_tokens}.",
    "Mask {ref}. Number of mask tokens: {n_tokens}.",
    "How would you segment {ref} if the mask may only have {n_tokens} token(s)?",
    "Output a mask for {ref} made of {n_tokens} token(s).",
    "Use {n_tokens} hierarchical mask token(s) to segment {ref}.",
    "Segment {ref} at a granularity of {n_tokens} (mask length).",
)

EXISTS_INSTRUCTIONS = (
    "Does the image contain {ref}? If it does, segment it.",
    "Is {ref} present in this image? Segment it if so.",
    "Check whether {ref} appears here; if it does, give its mask.",
    "Does {ref} exist in the picture? Answer, then segment it if present.",
    "Can you find {ref}? If you can, provide the mask.",
    "First tell me if {ref} is in the image, then segment it when present.",
    "Is any {ref} visible? Give its mask if there is one.",
    "Look for {ref}. Say whether it is there and, if it is, segment it.",
    "Segment {ref} if it is in the image; otherwise say it is absent.",
    "Answer whether {ref} appears, and mask it if it does.",
    "Is {ref} in this scene? If so, provide its segmentation.",
    "Determine if the image shows {ref}; segment it when it does.",
)

EXISTS_POSITIVE_RESPONSES = (
    "{answer}. The mask appears at {mask}.",
    "{answer}, it is there: {mask}.",
    "{answer}. Here is its mask: {mask}.",
    "{answer}, I can see it. Mask: {mask}.",
    "{answer}. {mask}",
    "{answer}, it is present, segmented as {mask}.",
    "{answer}; its mask is {mask}.",
    "{answer}, it appears in the image. {mask}",
    "{answer}. It is covered by {mask}.",
    "{answer}, found it: {mask}.",
    "{answer}. Segmentation: {mask}.",
    "{answer}, the object is visible and its mask is {mask}.",
)

EXISTS_NEGATIVE_RESPONSES = (
    "{answer}, there is no {ref} in the image.",
    "{answer}. I cannot find {ref} here.",
    "{answer}, {ref} does not appear in this image.",
    "{answer}. The image does not contain {ref}.",
    "{answer}; {ref} is absent.",
    "{answer}, nothing matches {ref}.",
    "{answer}. There is nothing to segment for {ref}.",
    "{answer}, {ref} is not present.",
    "{answer}. {ref} is not visible in this picture.",
    "{answer}, I see no {ref}.",
    "{answer}. The scene has no {ref}, so there is no mask.",
    "{answer}, {ref} cannot be found in the image.",
)

REASONING_INSTRUCTIONS = (
    "{question}\nWhat is the object and mask in the image?",  # official (ReasonSeg evaluation)
    "{question}\nName the object and segment it.",
    "{question} Please answer and give the mask.",
    "{question}\nTell me which object it is, then provide its mask.",
    "Think about this: {question} Identify the object and segment it.",
    "{question}\nAnswer with the object's name followed by its segmentation mask.",
    "Question: {question}\nRespond with the object and its mask.",
    "{question} Which object is it, and where exactly is it? Give a mask.",
    "Reason about the image to answer: {question} Then segment the answer.",
    "{question}\nExplain which object answers this and output its mask.",
    "{question}\nFirst say what the object is, then segment it.",
    "Here is a question about the image: {question}\nGive the answer and its mask.",
)

REASONING_RESPONSES = (
    "It is {ref}. The mask appears at {mask}.",
    "The answer is {ref}, segmented as {mask}.",
    "{ref}. Mask: {mask}.",
    "That would be {ref}; here is its mask: {mask}.",
    "The object is {ref}. {mask}",
    "It is {ref}, located at {mask}.",
    "Answer: {ref}. Segmentation: {mask}.",
    "This describes {ref}, whose mask is {mask}.",
    "I think it is {ref}. Its mask: {mask}.",
    "{ref} fits the question; the mask is {mask}.",
    "The object in question is {ref}, shown by {mask}.",
    "It refers to {ref}. Here is the mask {mask}.",
)

MASK_PERCEPTION_INSTRUCTIONS = (
    "Which expression describes the region {mask}? Options:\n{options}",
    "Look at the mask {mask}. Which of these matches it?\n{options}",
    "Choose the description that fits {mask}.\n{options}",
    "The mask {mask} marks one object. Pick the matching expression:\n{options}",
    "What does {mask} show? Select one option.\n{options}",
    "Select the phrase that refers to the masked region {mask}.\n{options}",
    "Here is a mask: {mask}\nWhich option names it?\n{options}",
    "Match the mask {mask} to one of the following expressions.\n{options}",
    "Which object is covered by {mask}?\n{options}",
    "Identify the region {mask} by choosing an option.\n{options}",
    "Among these expressions, which one is the mask {mask}?\n{options}",
    "Tell me which choice corresponds to {mask}.\n{options}",
)

MASK_PERCEPTION_RESPONSES = (
    "The answer is {label}. {ref}.",
    "{label}. {ref}",
    "Option {label}: {ref}.",
    "It matches option {label}, {ref}.",
    "The mask shows {ref} (option {label}).",
    "{label}, which is {ref}.",
    "That region is {ref}, so the choice is {label}.",
    "The correct option is {label}: {ref}.",
    "It is {ref}. Option {label}.",
    "I choose {label}, {ref}.",
    "The masked region is {ref}; answer {label}.",
    "Option {label} fits best: {ref}.",
)

MULTI_TARGET_INSTRUCTIONS = (
    "Segment {refs}.",
    "Please create masks for {refs}.",
    "Give a separate mask for each of {refs}.",
    "Find and segment {refs}.",
    "Produce the segmentation masks of {refs}.",
    "Where are {refs}? Answer with one mask each.",
    "Mask every one of these: {refs}.",
    "Segment each of the following: {refs}.",
    "I need masks for {refs}.",
    "Outline {refs} with masks, one per target.",
    "Provide a mask for every target: {refs}.",
    "Locate {refs} and give each its own mask.",
)

MULTI_TARGET_RESPONSES = (
    "{items}",
    "Here are the masks. {items}",
    "Sure. {items}",
    "One mask per target: {items}",
    "The masks are as follows. {items}",
    "All targets segmented. {items}",
    "I found them. {items}",
    "Masks, in order: {items}",
    "Segmentation results: {items}",
    "Each target with its mask: {items}",
    "Below are the masks you asked for. {items}",
    "Done. {items}",
)

MULTI_TARGET_ITEMS = (
    "{ref}: {mask}.",
    "The mask of {ref} appears at {mask}.",
    "{ref} is at {mask}.",
    "{ref} {mask}",
    "For {ref}, the mask is {mask}.",
    "{ref} is covered by {mask}.",
    "Mask of {ref}: {mask}.",
    "{ref} -> {mask}",
    "{ref} appears at {mask}.",
    "Here is {ref}: {mask}.",
    "{ref} corresponds to {mask}.",
    "{ref}, segmented as {mask}.",
)
