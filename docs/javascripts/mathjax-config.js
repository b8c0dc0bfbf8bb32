// MathJax 3 for pymdownx.arithmatex (generic mode): typeset only what it marked. The script itself is served from
// the site (docs/hooks/offline_mathjax.py), never from a CDN.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
