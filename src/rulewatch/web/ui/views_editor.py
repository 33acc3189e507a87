"""The rule editor (create, edit, test run) and the YAML import page."""

from __future__ import annotations

from typing import Any

import yaml
from flask import abort, flash, jsonify, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from rulewatch import dispatch
from rulewatch.models import utcnow
from rulewatch.schemas import FieldError, RuleInvalid, validate_rule
from rulewatch.services.datasources import datasource_names
from rulewatch.services.rule_import import import_rules as import_all
from rulewatch.services.rules import RuleNotFound, change_rule, create_rule, get_rule, spec_of
from rulewatch.web.common import rt, write
from rulewatch.web.ui import page_role, ui
from rulewatch.web.ui.rule_form import ImportForm, RuleForm
from rulewatch.yaml_load import load_yaml

NAME_TAKEN = "another rule took this name while this one was saved: choose another name"


@ui.route("/rules/new", methods=["GET", "POST"])
@page_role("editor")
def new_rule() -> ResponseReturnValue:
    """Create a rule; on an error, the form comes back with it next to its field."""
    form = RuleForm()
    if form.validate_on_submit():
        try:
            with write() as session:
                rule_id = create_rule(session, form.to_spec(), utcnow()).id
        except RuleInvalid as exc:
            form.show_errors(exc.errors)
        except IntegrityError:
            form.show_errors([FieldError("name", NAME_TAKEN)])
        else:
            flash("Rule created; its first verification is on its way.", "success")
            return redirect(url_for("ui.rule", rule_id=rule_id))
    return _editor(form, None)


@ui.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@page_role("editor")
def edit_rule(rule_id: int) -> ResponseReturnValue:
    """Change a rule; the stored rule stays as it was until the whole form is valid."""
    form = RuleForm()
    settings = rt().settings
    try:
        with write() as session:
            rule = get_rule(session, rule_id)
            if not form.is_submitted():
                form.fill(spec_of(rule))
                return _editor(form, rule_id)
            if form.validate():
                spec = form.to_spec()
                change_rule(session, rule, spec, utcnow(), settings.alerts, settings.base_url)
                session.flush()
            else:
                return _editor(form, rule_id)
    except RuleNotFound:
        abort(404)
    except RuleInvalid as exc:
        form.show_errors(exc.errors)
        return _editor(form, rule_id)
    except IntegrityError:
        form.show_errors([FieldError("name", NAME_TAKEN)])
        return _editor(form, rule_id)
    flash("Rule saved.", "success")
    return redirect(url_for("ui.rule", rule_id=rule_id))


def _editor(form: RuleForm, rule_id: int | None) -> tuple[str, int]:
    status = 422 if form.errors or form.form_errors else 200
    with rt().factory() as session:
        sources = datasource_names(session, rt().settings.datasources)
    title = "New rule" if rule_id is None else f"Edit {form.name.data}"
    page = render_template(
        "ui/rule_edit.html", title=title, form=form, rule_id=rule_id, datasources=sources
    )
    return page, status


@ui.route("/rules/import", methods=["GET", "POST"])
@page_role("editor")
def import_rules() -> ResponseReturnValue:
    """Create or update rules from a YAML file or pasted YAML; all or nothing."""
    form = ImportForm()
    problems: list[str] = []
    if form.validate_on_submit():
        items, problems = _yaml_rules(form)
        if not problems:
            try:
                settings = rt().settings
                with write() as session:
                    counts = import_all(
                        session, items, utcnow(), settings.alerts, settings.base_url
                    )
            except RuleInvalid as exc:
                problems = [_line(e) for e in exc.errors]
            else:
                unchanged = f", {counts.unchanged} unchanged" if counts.unchanged else ""
                message = f"Imported {counts.created} new and {counts.updated} changed rule(s)"
                flash(f"{message}{unchanged}.", "success")
                return redirect(url_for("ui.dashboard"))
    status = 422 if problems or form.errors else 200
    return render_template("ui/import.html", title="Import rules", form=form,
                           problems=problems), status  # fmt: skip


def _yaml_rules(form: ImportForm) -> tuple[list[Any], list[str]]:
    upload = form.file.data
    text = upload.read().decode("utf-8", "replace") if upload else (form.text.data or "")
    if not text.strip():
        return [], ["Choose a YAML file or paste YAML."]
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        return [], [f"This is not valid YAML: {exc}"]
    items = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return [], ["Expected a list of rules, or a mapping with a 'rules:' list."]
    return items, []


def _line(error: FieldError) -> str:
    where = f" (at character {error.position + 1})" if error.position is not None else ""
    return f"{error.field}{where}: {error.message}"


@ui.post("/rules/test-run")
@page_role("editor")
def test_run() -> ResponseReturnValue:
    """Verify the editor's draft through the interactive queue; records nothing."""
    form = RuleForm()
    if not form.validate():
        return jsonify(errors=form.errors), 400
    try:
        task_id = dispatch.try_draft(rt().settings, validate_rule(form.to_spec()))
    except RuleInvalid as exc:
        form.show_errors(exc.errors)
        return jsonify(errors={k: v for k, v in form.errors.items() if v}), 422
    return jsonify(task_id=task_id), 202
