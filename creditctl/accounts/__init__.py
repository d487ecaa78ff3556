"""Users and plans.

`users.add_user|show_user|search_users|list_users`, `plans.load_plans|list_plans|
check_feature`. The support view, which also reads billing, is `creditctl.support`.
"""
