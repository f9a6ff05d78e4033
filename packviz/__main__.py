from packviz.cli import main

raise SystemExit(main())
