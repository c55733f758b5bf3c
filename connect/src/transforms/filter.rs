//! `Filter`: drops every record it is applied to.
//! Useful only with a predicate, which picks the records to drop.

use super::record::ConnectRecord;
use super::util::Props;
use super::Transformation;
use crate::error::Result;

#[derive(Debug, Default, Clone, Copy)]
pub struct Filter;

impl Transformation for Filter {
    fn configure(&mut self, _props: &Props) -> Result<()> {
        Ok(())
    }

    fn apply(&self, _record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_everything() {
        let mut f = Filter;
        f.configure(&Props::new()).unwrap();
        assert_eq!(f.apply(ConnectRecord::default()).unwrap(), None);
    }
}
