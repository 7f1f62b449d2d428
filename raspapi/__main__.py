from raspapi.cli import main

raise SystemExit(main())
