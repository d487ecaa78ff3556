"""Users, plans and the support view.

`users.add_user|show_user|search_users|list_users`, `plans.load_plans|list_plans|
check_feature`, `account_view.account_view`.
"""
