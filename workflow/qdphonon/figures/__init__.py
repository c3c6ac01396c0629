"""The figures: the campaign's (:mod:`qdphonon.figures.campaign`, the size figure in
:mod:`qdphonon.figures.size`), the claims' and the anharmonicity's, the route comparison's, and what they
share (style, reproducible PNG/PDF output, the figure names the rules declare)."""
