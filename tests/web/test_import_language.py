"""Issue 19: the dashboard's import page shows CSV row errors in the staff member's language,
and its reject file carries them in that language too."""

from __future__ import annotations

import re

from service.auth.models import Role
from tests.registry.test_csv_import import BAD_ROWS, GOOD_ROWS, cp932_file
from tests.web.conftest import FormClient, add_staff


def test_the_dashboard_import_page_shows_row_errors_in_the_users_language(
    forms: FormClient, engine
) -> None:
    forms.login(add_staff(engine, Role.coordinator))
    data = cp932_file(GOOD_ROWS + BAD_ROWS)

    def preview() -> str:
        token = forms.csrf("/registry/import")
        return forms.client.post(
            "/registry/import",
            data={"csrf_token": token, "kind": "residents"},
            files={"file": ("名簿.csv", data, "text/csv")},
        ).text

    japanese = preview()
    assert "はい/いいえ（○/×、1/0）で入力してください" in japanese
    assert "expected yes/no" not in japanese and "invalid phone number" not in japanese
    payload = re.search(r'name="payload" value="([^"]+)"', japanese).group(1)
    rejects = forms.post("/registry/import/rejects", {"kind": "residents", "payload": payload})
    assert "電話番号が正しくありません" in rejects.content.decode("utf-8-sig")
    forms.post("/language", {"language": "en", "next": "/"})
    english = preview()
    assert "expected yes/no" in english and "はい/いいえ（○/×、1/0）で入力" not in english
