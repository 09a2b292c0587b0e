"""The form of a question (who, when, how many, what, why-how, open): what kind of reply fits it.

The answer service explains (several cited sentences) for open, why/how and definition questions; the evaluation
breaks its figures down by the same forms.
"""

from __future__ import annotations

import re

_HOW_MANY = re.compile(r"\bhow\s+(many|much|long|old|far|big|large|tall|high|fast|often)\b|"
                       r"\b(what|which)\s+(percentage|percent|proportion|number|amount)\b", re.I)
_WHEN = re.compile(r"^\W*when\b|\b(what|which|in\s+what|in\s+which)\s+(year|years|century|decade|date|month|day)\b",
                   re.I)
_WHO = re.compile(r"^\W*(who|whom|whose)\b|\b(who|whom|whose)\s+(was|is|were|did|had|has)\b", re.I)
_OPEN = re.compile(r"^\W*(explain|describe|compare|contrast|discuss|summari[sz]e|outline|list|tell|give)\b|"
                   r"\b(difference|differences|differ|compare|pros\s+and\s+cons|advantages|trade-?offs?)\b", re.I)
#: "What are the (main) challenges of …": a list of points, answered as an explanation.
_LIST = re.compile(r"^\W*what\s+are\s+(the\s+|some\s+)?([\w-]+\s+){0,2}(challenges|benefits|limitations|drawbacks|"
                   r"disadvantages|strategies|techniques|methods|ways|steps|applications|risks|components|properties|"
                   r"characteristics)\b", re.I)
#: "What is X?" / "What are X?" about a term (a few words): a definition, which a sentence or two explains.
_DEFINITION = re.compile(r"^\W*what\s+(is|are)\s+(?P<article>an?\s+|the\s+)?(?!it\b|this\b|that\b)"
                         r"(?P<term>[\w-]+(\s+[\w-]+){0,4})\s*\?\s*$", re.I)
#: After "the", a term is a name ("the reparameterization trick", "the ELBO"); a word like these makes it a question
#: about something else ("the capital of France", "the largest city", "the year when …").
_NOT_A_TERM = re.compile(r"\b(of|in|on|at|for|from|to|by|with|between|about|when|where|which|who|that|only|first|last|"
                         r"second|third|fourth|fifth|next|final|previous|"
                         r"most|least|best|worst|(larg|small|bigg|high|low|long|short|old|new|earli|lat|great|fast|slow)"
                         r"est)\b", re.I)
#: "What is the learning rate?", "What is the batch size?": an attribute's value, a fact, not a term to define.
_ATTRIBUTE = re.compile(r"\b(rate|size|number|name|value|date|year|time|capital|population|price|cost|length|width|"
                        r"height|depth|dimension|dimensionality|accuracy|score|result|answer|total|amount|count|"
                        r"percentage|ratio|speed|weight|temperature|distance|address|title|version|default|limit)s?\W*$",
                        re.I)
_WHY_HOW = re.compile(r"^\W*(why|how)\b|\b(why|how)\s+(does|do|did|is|are|was|were|can|could|would)\b|"
                      # "What does a VAE learn?": what a model learns is described, not named in a phrase.
                      r"^\W*what\s+(does|do|did)\s+[^?]*\blearn(\s+from|\s+to\s+\w+)?\s*\?\s*$", re.I)
_WHAT = re.compile(r"^\W*(what|which|where)\b|\b(what|which|where)\b", re.I)
QUESTION_TYPES = ("who", "when", "how many", "what", "why-how", "open", "other")
#: A leading subordinate clause ("When generating long sequences, how can you …?", "In the IMDB experiment, how many
#: …?") sets the scene; the question is the main clause after its comma. Without this, "When …, how …?" read as a
#: question about a time and got a short answer.
_LEADING_CLAUSE = re.compile(r"^\W*(when|whenever|if|while|once|given|assuming|since|after|before|in|for|during|with)\b"
                             r"(?!\s+(what|which|how|who|whom|whose|when|where)\b)"  # "In what year …, which …?" asks
                             r"[^,?]{3,},\s*(?=(how|what|why|which|who|whom|whose|where|when|can|could|should|would|is|"
                             r"are|do|does|did)\b)", re.I)


def question_type(question: str) -> str:
    """The form of a question, for the per-type breakdown (first match of how many, when, who, open, why-how, what),
    read from its main clause."""
    question = _LEADING_CLAUSE.sub("", question, count=1)
    for name, pattern in (("how many", _HOW_MANY), ("when", _WHEN), ("who", _WHO), ("open", _OPEN), ("open", _LIST),
                          ("why-how", _WHY_HOW), ("what", _WHAT)):
        if pattern.search(question):
            return name
    return "other"


def defined_term(question: str) -> str | None:
    """The term of a definition question, "What is X?" about a term ("What is classifier-free guidance?" ->
    "classifier-free guidance"); None for any other question."""
    match = _DEFINITION.search(question)
    if match is None:
        return None
    article = (match.group("article") or "").strip().lower()
    term = match.group("term")
    if article == "the" and (len(term.split()) > 4 or _NOT_A_TERM.search(term) or _ATTRIBUTE.search(term)):
        return None
    return term


def is_definition(question: str) -> bool:
    """ "What is X?" about a term: the short answer names it; the reply should also say what it is."""
    return defined_term(question) is not None


#: Verbs with which a sentence defines its subject ("X is …", "X (Y, 2021) refers to …").
_DEFINING_VERBS = frozenset({"is", "are", "refers", "means", "denotes"})
_ALSO_CALLED = re.compile(r"^[^,]{1,80},\s*(?:also\s+)?(?:called|known\s+as)\s+(?:an?\s+|the\s+)?(?P<name>[^,]{1,60}),"
                          r"\s*(?P<verb>\w+)", re.I)


def _term_tokens(text: str) -> list[str]:
    """Lower-cased words, British and American -ise/-ize spellings alike ("normalising" = "normalizing")."""
    return [re.sub(r"is(e|es|ed|ing|ation|ations)$", r"iz\1", w) for w in re.findall(r"\w+", text.lower())]


def defines(sentence: str, term: str) -> bool:
    """Whether `sentence` defines `term`: it opens with the term, or with a name whose parenthesis holds it ("A
    variational autoencoder (VAE) is …"), and the next word after any parenthesis is "is", "are", "refers", "means"
    or "denotes"; or it names the term as another name ("X, also called TERM, is …"). "Classifier-free guidance
    removes that need." opens with the term but does not define it."""
    wanted = _term_tokens(term)
    also = _ALSO_CALLED.match(sentence)  # "A flow-based model, also called a normalising flow, is …"
    if also and _term_tokens(also.group("name")) == wanted:
        return also.group("verb").lower() in _DEFINING_VERBS
    tokens = re.findall(r"\([^)]*\)|\w+", sentence)
    if tokens and tokens[0].lower() in ("a", "an", "the"):
        tokens = tokens[1:]

    def names_term(token: str) -> bool:
        return token.startswith("(") and _term_tokens(token.split(",")[0]) == wanted

    n = len(wanted)
    if _term_tokens(" ".join(tokens[:n])) == wanted:  # "X is …", "X (…) is …"
        rest = tokens[n:]
    else:  # "A … (X) is …": the first parenthesis past the term's length, or one holding the term before it
        at = next((k for k, t in enumerate(tokens[:12]) if t.startswith("(") and (k >= n or names_term(t))), None)
        if at is None or not names_term(tokens[at]):
            return False
        rest = tokens[at + 1:]
    words = [t for t in rest if not t.startswith("(")]
    return bool(words) and words[0].lower() in _DEFINING_VERBS


#: A request rather than a question: "List …", "Describe …", "Can you explain …", "Tell me about …", "Give an
#: overview of …". The verb asks for a form of reply; it is not a word the documents hold. The verb must be followed
#: by a space, colon or comma ("Describe-based" is a word) and not by "of" ("Name of the author?" is a question).
_REQUEST = re.compile(r"^\W*(?P<polite>please,?\s+|(?:please,?\s+)?(?:can|could|would|will)\s+you\s+(?:please\s+)?)?"
                      r"(?P<verb>explain|describe|list|summari[sz]e|outline|discuss|define|name|"
                      r"tell\s+me(?:\s+about)?|give\s+(?:me\s+)?(?:an?\s+|the\s+)?(?:brief\s+|short\s+|quick\s+)?"
                      r"(?:overview|summary|list|description|explanation|definition)(?:\s+of)?)"
                      r"(?=[\s:,])(?![\s:,]+of\b)[\s:,]*", re.I)
#: Verbs that are nouns too: "List comprehension in Python: how?" is a question, not a request, unless asked politely.
_NOUN_VERBS = {"list", "name", "outline"}
#: Requests for a fact: they ask for what their topic asks for (the other verbs ask for an explanation).
_FACT_VERBS = re.compile(r"name|tell\s+me", re.I)


def _request(question: str) -> tuple[str, str] | None:
    """(the request's verb, its topic), or None when the question is no request."""
    match = _REQUEST.match(question)
    if match is None:
        return None
    verb = match.group("verb")
    if verb.lower() in _NOUN_VERBS and not match.group("polite") and question.rstrip().endswith("?"):
        return None
    topic = question[match.end():].strip().rstrip(".!?").strip()
    return (verb, topic) if re.search(r"\w", topic) else None


def request_topic(question: str) -> str:
    """What a request asks about, for searching and judging relevance: "List the main components of a RAG
    pipeline." -> "the main components of a RAG pipeline"; a question that is not a request is returned as it is.
    The request's verb ("list", "describe") would count as a word of the question that the documents lack."""
    request = _request(question)
    return request[1] if request else question


def wants_explanation(question: str) -> bool:
    """Open ("explain", "compare", "what is the difference", "what are the challenges"), why/how and definition
    questions want more than one fact; so do requests to explain, describe or list ("Can you list …"). A request
    for a fact ("Could you tell me the learning rate of …", "Name the author of …", "Can you explain when …")
    wants what its topic asks for."""
    request = _request(question)
    if request is None:
        return _wants_explanation(question)
    verb, topic = request
    if question_type(topic) in {"who", "when", "how many"}:
        return False
    return not _FACT_VERBS.fullmatch(verb) or _wants_explanation(topic)


def _wants_explanation(question: str) -> bool:
    return question_type(question) in {"open", "why-how"} or is_definition(question)
