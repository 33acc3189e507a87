from rulewatch.cli import main

main()
