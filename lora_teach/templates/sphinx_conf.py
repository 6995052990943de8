# Sphinx settings of the course site (copied into the site's source folder by lora_teach.site).
# The pages are the notebooks with their stored outputs: nothing is executed, nothing is fetched.

project = "lora-teach"
author = "the lora-teach authors"
copyright = "the lora-teach authors, MIT licence"
html_title = "lora-teach: Low-Rank Adaptation from the ground up"

extensions = ["myst_nb", "sphinx_copybutton"]
exclude_patterns = ["extra", "_build"]
nb_execution_mode = "off"                   # the stored outputs, as CI compared them
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_output_stderr = "remove"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,                    # each page's sections in its right-hand "Contents"
    "show_navbar_depth": 1,
    "use_download_button": False,           # each page links its notebook and student copy instead
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
html_static_path = ["_static"]
html_css_files = ["course_site.css"]
html_extra_path = ["extra"]                 # downloads/: the notebooks and student copies as they are
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
mathjax_path = "mathjax/tex-chtml-full.js"  # the pinned npm copy in _static, not a CDN
copybutton_exclude = ".linenos, .gp, .go"
