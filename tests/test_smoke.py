def test_deduct_then_refuse(cli):
    assert cli("users", "add", "a@example.com", "--id", "u1").exit_code == 0
    result = cli("credits", "deduct", "u1", "105", "--json")
    assert result.exit_code == 0, result.output
    refused = cli("credits", "deduct", "u1", "1")
    assert refused.exit_code == 3
