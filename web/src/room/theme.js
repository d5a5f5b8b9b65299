// The editor's look, shared by the room and the replay player.
import { EditorView } from '@codemirror/view'

const MONO = "ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace"

export const editorTheme = EditorView.theme({
  '&': { minHeight: '24rem', backgroundColor: '#ffffff', color: '#1b1b1f', borderRadius: '6px' },
  '&.cm-focused': { outline: '3px solid #f5a623', outlineOffset: '2px' },
  '.cm-scroller': { fontFamily: MONO, minHeight: '24rem', lineHeight: '1.5' },
  // Room above the first line for the name on a cursor there.
  '.cm-content': { paddingTop: '1.1em' },
  '.cm-gutters': { color: '#4a4a55', backgroundColor: '#f3f4f7', borderRight: '1px solid #c9c9d3' },
  // Names on remote cursors stay shown: in a dojo, who types where is the point.
  '.cm-ySelectionInfo': {
    opacity: '1 !important',
    color: '#ffffff',
    fontFamily: 'system-ui, sans-serif',
    padding: '0 3px',
    borderRadius: '3px',
  },
})
